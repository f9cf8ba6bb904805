"""qkt: route trading strategies written in the .qkt language to the right broker account."""

__version__ = "0.1.0"
