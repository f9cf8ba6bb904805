"""Market data sources: replayed CSV files now; venue quotes arrive with the broker adapters."""
