"""The bundled Bybit v5 simulator: a real HTTP server answering the REST endpoints qkt's bybit
profile uses as Bybit does (reference/bybit-v5.md), over one simulated unified account.

``qkt sim bybit --port 5002`` serves:

* signing and clock checks exactly as Bybit's (``auth.py``): 10003 unknown key, 10002 outside
  ``server_time - recv_window <= timestamp < server_time + 1000``, 10004 wrong signature over
  the raw query string or body; ``retCode`` envelopes in HTTP 200; per-endpoint rate limits
  with their ``X-Bapi-Limit*`` headers; public ``/v5/market/*`` unsigned;
* market data (``market.py``, ``reads.py``): server time, tickers (every symbol of a category
  without ``symbol``), instruments-info with lot-size and price filters, klines newest first
  over seeded 1-minute history of the last days (open bar included); quotes from a seeded
  random walk or a replay file;
* trading (``linear.py``, ``positions.py``, ``spot.py``): one-way linear positions netting
  market and limit orders (fills at the ask for buys, the bid for sells), ``Full``-mode TP/SL on
  the position triggered by the last price as orders Bybit creates itself (``orderLinkId: ""``,
  ``createType`` ``CreateByTakeProfit``/``CreateByStopLoss``), ``reduceOnly`` (110017), the
  ``orderLinkId`` rules (10001, 110072 / 170141 duplicates), the lot-size checks (10001, 110094;
  spot 170136/170137/170140/170148), spot coin balances with Bybit's fee currencies, a USDT
  wallet with equity, margin and realised PnL; orders, history and executions (``records.py``);
* fault switches and test hooks under ``/_sim/`` (``faults.py``, ``app.py``).

Tests drive it in-process through :class:`BybitSimServer`. Simplifications: no order-book
depth (every market order fills whole at the best price), no funding, no liquidation, no
``Partial`` TP/SL mode, no spot TP/SL; linear and spot trade on the same quotes.
"""

from qkt.sim.bybit.app import DEFAULT_API_KEY, DEFAULT_API_SECRET, create_app
from qkt.sim.bybit.auth import sign
from qkt.sim.bybit.server import BybitSimServer
from qkt.sim.bybit.state import BybitState

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "BybitSimServer",
    "BybitState",
    "create_app",
    "sign",
]
