"""MetaTrader 5 through an mt5-gateway (reference/mt5-gateway.md)."""
