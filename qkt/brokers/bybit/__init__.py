"""Bybit v5 REST, signed with HMAC-SHA256, no gateway in between (reference/bybit-v5.md)."""
