"""Brokers: the protocol every venue adapter implements, and the registry of broker factories."""
