"""The deterministic core: clock, events, prices, candles, indicators, orders and positions.

Plain synchronous Python with no I/O: a replay of the same input always gives the same output.
"""
