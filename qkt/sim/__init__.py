"""The bundled mt5-gateway simulator: a real HTTP server answering as deployed mt5-gateways and an
MT5 terminal do (reference/mt5-gateway.md, "What real gateways do").

``qkt sim gateway --port 5001`` serves a demo account (login 12345678, balance 10,000 USD) with
seeded random-walk quotes (or quotes that follow a replay file) and simulates:

* the gateway: ``ok``/``request_id`` envelopes and error bodies with ``error_type``; bearer auth
  on every route but ``/health/live``; readiness (503 while disconnected or kill-switched, 423 on
  trading routes under the kill switch); ``/order`` body checks, volume rounded down to the step,
  idempotency by ``client_order_id``/``Idempotency-Key`` kept in memory for an hour; comments cut
  to 25 characters; ``/history_deals_get`` by broker wall-clock window (answering every deal of
  the window even with ``position=``); ``/reconcile``; M1..D1 bars in UTC for warm-up;
* the terminal: ``order_check`` refusals with retcodes (10013 unknown symbol, 10014 volume,
  10015 price, 10016 stops, 10017 disabled, 10044 close-only); MQL5 netting (one position per
  symbol for the account; reversals keep the identifier and take the reversing order's ticket) or
  hedging (``--hedging``); market fills at bid/ask; pending orders and SL/TP triggered by its own
  prices (deal reasons 4/5); deals carrying the position's identifier and the order's comment;
  comments kept to 16 characters; times on the broker's wall clock (``--server-time-zone``).

Tests drive it through ``SimServer`` and the ``/_sim/`` hooks and fault switches documented in
``app.py``; ``SimState`` fields choose the variants deployed gateways differ by.
Simplifications: no slippage, margin or swaps; profit in the account currency without conversion.
"""

from qkt.sim.app import create_app
from qkt.sim.server import SimServer
from qkt.sim.state import SimState

__all__ = ["SimServer", "SimState", "create_app"]
