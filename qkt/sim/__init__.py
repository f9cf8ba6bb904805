"""The bundled mt5-gateway simulator: a real HTTP server speaking reference/mt5-gateway.md.

``qkt sim gateway --port 5001`` serves a netting (``--hedging``: hedging) demo account (login
12345678, balance 10,000 USD) with seeded random-walk quotes, market fills at bid/ask, SL/TP
triggered by its own prices (deal reasons 4/5), positions filtered by magic, and retcode rejections
(10014 bad volume, 10016 wrong-side stops). Tests drive it through ``SimServer`` and the
``/_sim/`` hooks documented in ``app.py``.
Simplifications: market orders only; profit in the account currency without conversion.
"""

from qkt.sim.app import create_app
from qkt.sim.server import SimServer
from qkt.sim.state import SimState

__all__ = ["SimServer", "SimState", "create_app"]
