"""Mutation fuzzer of everything qkt reads: ``python scripts/fuzz.py BUDGET [--seed N] [--out DIR]``

Inputs are mutants of the bundled examples (``examples/*.qkt``, ``examples/portfolio.yaml``,
``qkt.config.yaml``, slices of ``examples/data/*.csv``), made with byte mutations (flips, inserts,
deletes, BOMs, NULs, invalid UTF-8), line mutations (duplicates, deletions, splices between
examples, very long lines), token mutations (numbers swapped for 0, -1, 1e400, nan, huge digit
runs; keywords and names swapped; deep nesting) and structure-aware ones (YAML anchors and
aliases, merge keys, tags, deep nesting; CSV times, columns and quoting; PARAM overrides). Each
goes through the public API that ``qkt validate`` and ``qkt run`` use:

- ``strategy``: parse and check a strategy file, plan its routes (``Validator.strategy``);
- ``run``: bind PARAM overrides, check a replay, run a paper ``LiveSession`` over a few hundred rows;
- ``params``: random ``--param`` items and portfolio values through ``qkt.params.apply_params``;
- ``replay``: a mutated CSV through ``check_replay`` and ``ReplaySource`` into a session;
- ``config``: a mutated ``qkt.config.yaml`` through ``load_config``, the registry, validation and a
  paper session on its profiles;
- ``portfolio``: a mutated portfolio through ``Validator.portfolio`` and a directory scan;
- ``venue``: gateway answers to ``/symbol_info_tick`` (through ``GatewayClient`` on a mock transport)
  priced into a session holding a position;
- ``cli``: ``qkt validate`` and ``qkt run`` in-process through ``cli.main.main``.

A **crash** is an exception that is not one of qkt's own user-facing errors (a ``QktError`` with
diagnostics; diagnostics returned in a report), an ``internal-error`` diagnostic, a wrong answer
to an invariant (a replay the check passed failing while it replays, a summary that does not count
what the session said), or exit code 3 from the CLI. A **hang** is an input still running after
``--timeout`` seconds, twice. Memory is capped (``--memory-mb``): a blow-up is a MemoryError, a
crash. Each crasher and hang is saved (minimised when cheap) under ``--out`` as a directory
holding its files and ``case.json``; ``python scripts/fuzz.py --reproduce DIR`` runs it again.

The last line is always ``fuzz: N inputs, C crashes, H hangs``; the exit code is 0 when C + H is 0.
The same ``--seed`` makes the same inputs in the same order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import hashlib
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

EXAMPLES = ROOT / "examples"
DATA = EXAMPLES / "data"

# ---------------------------------------------------------------- seeds

KITCHEN_SINK = """-- every construct of the language
STRATEGY Kitchen_Sink VERSION 3
SYMBOLS
  eur = EXNESS:EURUSD EVERY 5m WARMUP 3 BARS
gold = PAPER:XAUUSD EVERY 1m
btc = BACKTEST:BTCUSDT EVERY 2m
PARAM fast = 3
PARAM ratio = -0.5
PARAM verbose = TRUE
PARAM note = 'hello'
LET spread = eur.high - eur.low
LET mid = (eur.high + eur.low) / 2
LET a1 = mid + spread
LET a2 = a1 * 2 - a1
RULES
WHEN ema(eur, fast) CROSSES ABOVE sma(eur.close, 8)
  AND NOT rsi(eur, 5) > 70 OR eur.close BETWEEN 1.0 AND 1.5
THEN BUY eur SIZING 2 PCT OF EQUITY BRACKET { STOP_LOSS BY 1.5 PCT, TAKE_PROFIT AT a2 * 1.01 };
     LOG warning "long eur"
WHEN macd(gold, 3, 6, 2) crosses below macd_signal(gold, 3, 6, 2) THEN
  SELL gold SIZING 1000 USD BRACKET STOP_LOSS BY 2 TAKE_PROFIT BY 4
WHEN POSITION.gold.entry_price > 0 AND POSITION.gold != 0 AND ACCOUNT.equity >= ACCOUNT.balance
THEN CLOSE gold
WHEN gold.volume IN [1, 2, 3 + 1] AND atr(gold, 4) % 2 <> 1 AND -spread < 0 AND btc == btc
THEN CLOSE_ALL; FLATTEN
WHEN bollinger_upper(btc, 5, 2) - bollinger_lower(btc, 5) > stdev(btc, 5) * wma(btc, 5) * 0
  AND highest(btc.high, 4) > lowest(btc.low, 4) AND macd_hist(btc, 3, 10, 4) > -1000000
  AND verbose = TRUE
THEN BUY btc SIZING 5 PCT OF BALANCE; SELL btc SIZING ratio * -1; LOG "done";
WHEN note IN ['hello', "bye"] AND POSITION.eur.pnl + POSITION.eur.unrealized_pnl > -1000
  AND ACCOUNT.realized_pnl + ACCOUNT.unrealized_pnl > -100 AND bollinger_middle(eur, 4) > 0
THEN BUY eur BRACKET TAKE_PROFIT BY 3 STOP_LOSS AT eur.low SIZING 0.01; LOG DEBUG 'dbg'
"""

BUSY = """STRATEGY busy VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
PARAM lots = 1
PARAM pct = 1
RULES
WHEN eur.close > ema(eur, 2) AND POSITION.eur = 0
THEN BUY eur SIZING lots BRACKET STOP_LOSS BY pct PCT TAKE_PROFIT BY pct * 2 PCT
WHEN eur.close < ema(eur, 2) AND POSITION.eur > 0 THEN CLOSE eur
WHEN eur.close < sma(eur, 3) AND POSITION.eur = 0
THEN SELL eur SIZING 50 PCT OF EQUITY BRACKET STOP_LOSS BY eur.high - eur.low + 0.0001
"""

CONFIG_SEEDS = [
    """brokers:
  sim:
    type: paper
    quotes_from: exness
    slippage_bps: 5
    commission_bps: 2
    contract_sizes: {EURUSD: 100000, XAUUSD: 100}
    starting_balance: 5000
  exness:
    instrument_overrides:
      EURUSD: {min_volume: 0.01, max_volume: 200, volume_step: 0.01, digits: 5}
market_data:
  source: replay
  replay: {path: r.csv, speed: max}
paper: {starting_balance: 10000}
""",
    """strict_brokers: true
base: &base {type: mt5, gateway_url: 'http://h:1', magic: 7}
brokers:
  a: {extends: exness, gateway_url: 'http://localhost:5005', magic: 10005}
  b: {extends: a, magic: 10006, api_key: '${TOKEN:-x}'}
  c: {type: paper, slippage_bps: 1}
""",
]

# Words the language knows, and a few it does not: keywords, indicators, fields, labels.
WORDS: list[str] = sorted(
    re.findall(
        r"\S+",
        """STRATEGY VERSION SYMBOLS PARAM LET RULES WHEN THEN BUY SELL CLOSE CLOSE_ALL FLATTEN LOG
        SIZING PCT OF EQUITY BALANCE USD BRACKET STOP_LOSS TAKE_PROFIT BY AT EVERY WARMUP BARS AND
        OR NOT CROSSES ABOVE BELOW BETWEEN IN TRUE FALSE POSITION ACCOUNT ema sma wma rsi stdev
        highest lowest atr macd macd_signal macd_hist bollinger_upper bollinger_lower
        bollinger_middle open high low close volume entry_price pnl unrealized_pnl equity balance
        realized_pnl EXNESS BACKTEST PAPER OANDA EURUSD XAUUSD BTCUSDT 1m 5m 1h 4h 1d 0m 1s 99999d""",
    )
)
PUNCT = [*"()[]{},;:.=<>+-*/%\"'", "<=", ">=", "==", "!=", "<>", "--", "#"]
EXTREMES = [
    "0",
    "-0",
    "-1",
    "1",
    "0.5",
    "1e400",
    "-1e400",
    "1e-400",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "0.00000001",
    "0.000000001",
    "1000000000",
    "1000000001",
    "1000000000000",
    "4294967296",
    "18446744073709551616",
    "9" * 30,
    "9" * 400,
    "9" * 5000,
    "0." + "0" * 400 + "1",
    "1" + "0" * 20 + ".5",
    "1.7976931348623157e308",
    "1e999999999",
    "2.5",
    "100",
    "99.999999",
    "10001",
    ".5",
    "1.",
    "0x10",
    "1_000",
    "(1/0)",
    "(1 - 1)",
    "-(-1)",
    "",
]
QKT_NUMBERS = [e for e in EXTREMES if re.fullmatch(r"-?[0-9.()/ -]+", e) and e.count(".") <= 1]
SPECIAL_BYTES = [
    b"\xef\xbb\xbf",
    b"\x00",
    b"\r",
    b"\r\n",
    b"\t",
    b"\x0b\x0c",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xe2\x80\xa8",
    b"\xc2\xa0",
    "é".encode(),
    "😀".encode(),
    b"\x1b[31m",
    b"\\",
    b'"',
    b"'",
    b",",
    b"\n",
]
YAML_SNIPPETS = [
    "a: &a [1, 2, 3]\nb: *a\n",
    "x: *undefined\n",
    "<<: {name: merged}\n",
    "k: !!binary aGVsbG8=\n",
    "k: !!timestamp 2026-13-45\n",
    "k: !!python/object/apply:os.system ['true']\n",
    "k: !!float x\n",
    "k: !!set {a, b}\n",
    "? [complex, key]\n: v\n",
    "---\nsecond: doc\n",
    "%YAML 1.1\n---\n",
    "k: ${UNSET}\n",
    "k: ${X:-default}\n",
    "k: $${literal}\n",
    "k: ${\n",
    "k: 0o777\n",
    "k: 1e400\n",
    "k: .nan\n",
    "k: -.inf\n",
    "k: 2026-03-02T00:00:00Z\n",
    "k: 99999999999999999999999999999999999\n",
    "k: ~\n",
    "k: |\n  block\n  text\n",
    "k: 'unterminated\n",
    "\t tab: indent\n",
]
WEIRD_PATHS = [
    "/dev/zero",
    "/dev/null",
    "/",
    "/tmp",
    ".",
    "..",
    "x" * 300,
    "a/" * 2100 + "s.qkt",
    "missing.qkt",
    "~/s.qkt",
    "$HOME/s.qkt",
    "s.qkt\x00",
    "momentum.qkt/",
    "r.csv",
    "",
]


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _csv_slice(path: Path, rng: random.Random, rows: int) -> bytes:
    lines = path.read_bytes().splitlines(keepends=True)
    start = rng.randrange(1, max(2, len(lines) - rows))
    return b"".join([lines[0], *lines[start : start + rows]])


def _ticks_of(bars: bytes) -> bytes:
    out = [b"time,bid,ask,volume\n"]
    for line in bars.splitlines()[1:]:
        cells = line.split(b",")
        close = Decimal(cells[4].decode())
        ask = close * Decimal("1.00002")
        out.append(b"%s,%s,%s,%s\n" % (cells[0], cells[4], str(ask).encode(), cells[5]))
    return b"".join(out)


# ---------------------------------------------------------------- mutations

TOKEN = re.compile(rb"[0-9]+(?:\.[0-9]+)?|[A-Za-z_][A-Za-z0-9_]*|\s+|.", re.DOTALL)
NUMBER = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


class Mutator:
    """Stacked random mutations of bytes; the random source decides everything."""

    def __init__(self, rng: random.Random, corpus: Callable[[], bytes]) -> None:
        self.rng = rng
        self.corpus = corpus  # another input to splice from

    def mutate(self, data: bytes, kind: str, rounds: int | None = None) -> bytes:
        rng = self.rng
        ops: list[Callable[[bytes], bytes]] = [
            *([self.number] * 6),
            *([self.token] * 4),
            *([self.line] * 3),
            *([self.byte] * 2),
            self.splice,
            self.nest,
            self.long_line,
        ]
        if kind == "gentle-qkt":  # mutants that mostly still parse: numbers and whole lines
            ops = [*([self.qkt_number] * 4), self.qkt_line, self.qkt_line, self.line]
        elif kind == "gentle-csv":  # mutants that mostly pass the check: odd but valid prices
            ops = [*([self.csv_scale] * 4), self.csv_row, self.csv_cell]
        elif kind == "yaml":
            ops += [self.yaml_snippet] * 2 + [self.yaml_tree] * 4 + [self.yaml_bomb]
        elif kind == "csv":
            ops += [self.csv_cell] * 5 + [self.csv_row] * 2 + [self.csv_header]
        elif kind == "qkt":
            ops += [self.qkt_line] * 3
        for _ in range(rounds if rounds is not None else rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
            data = rng.choice(ops)(data)
            if len(data) > 2_000_000:
                data = data[:2_000_000]
        return data

    # -- bytes
    def byte(self, data: bytes) -> bytes:
        rng = self.rng
        at = rng.randrange(len(data) + 1)
        op = rng.randrange(6)
        if op == 0 and data:
            i = min(at, len(data) - 1)
            return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
        if op == 1:
            return data[:at] + rng.choice(SPECIAL_BYTES) + data[at:]
        if op == 2:
            end = at + rng.randrange(1, 64)
            return data[:at] + data[end:]
        if op == 3:
            end = at + rng.randrange(1, 256)
            return data[:end] + data[at:end] * rng.choice((1, 2, 50)) + data[end:]
        if op == 4:
            return data[:at]  # truncated
        return data[:at] + bytes([rng.randrange(256)]) + data[at:]

    # -- lines
    def line(self, data: bytes) -> bytes:
        rng = self.rng
        lines = data.splitlines(keepends=True) or [b""]
        i = rng.randrange(len(lines))
        op = rng.randrange(6)
        if op == 0:
            lines.insert(i, lines[i])
        elif op == 1 and len(lines) > 1:
            del lines[i]
        elif op == 2:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 3:
            lines[i : i + 1] = [lines[i]] * rng.choice((3, 100, 3000))
        elif op == 4:
            lines.insert(rng.randrange(len(lines) + 1), lines.pop(i))
        else:
            other = self.corpus().splitlines(keepends=True) or [b""]
            lines.insert(i, rng.choice(other))
        return b"".join(lines)

    def splice(self, data: bytes) -> bytes:
        other = self.corpus()
        rng = self.rng
        return data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1) :]

    def long_line(self, data: bytes) -> bytes:
        rng = self.rng
        at = rng.randrange(len(data) + 1)
        unit = rng.choice((b"a", b"9", b"x,", b" ", b"-- ", b"1.", b"("))
        return data[:at] + unit * rng.choice((1000, 70_000, 140_000)) + data[at:]

    def nest(self, data: bytes) -> bytes:
        rng = self.rng
        spans = [m.span() for m in NUMBER.finditer(data)]
        depth = rng.choice((33, 100, 5000))
        if not spans:
            return b"(" * depth + data + b")" * depth
        a, b = rng.choice(spans)
        opener, closer = rng.choice(
            (
                (b"(", b")"),
                (b"[", b"]"),
                (b"{", b"}"),
                (b"-", b""),
                (b"NOT ", b""),
                (b"ema(eur, ", b")"),
                (b"1+", b""),
            )
        )
        return data[:a] + opener * depth + data[a:b] + closer * depth + data[b:]

    # -- tokens
    def number(self, data: bytes) -> bytes:
        spans = [m.span() for m in NUMBER.finditer(data)]
        if not spans:
            return self.token(data)
        a, b = self.rng.choice(spans)
        return data[:a] + self.rng.choice(EXTREMES).encode() + data[b:]

    def qkt_number(self, data: bytes) -> bytes:
        spans = [m.span() for m in NUMBER.finditer(data)]
        if not spans:
            return data
        a, b = self.rng.choice(spans)
        return data[:a] + self.rng.choice(QKT_NUMBERS).encode() + data[b:]

    def token(self, data: bytes) -> bytes:
        rng = self.rng
        tokens: list[bytes] = TOKEN.findall(data)
        if not tokens:
            return rng.choice(WORDS).encode()
        i = rng.randrange(len(tokens))
        op = rng.randrange(5)
        if op == 0:
            del tokens[i]
        elif op == 1:
            tokens.insert(i, tokens[i])
        elif op == 2:
            tokens[i] = rng.choice(WORDS).encode()
        elif op == 3:
            tokens.insert(i, rng.choice(PUNCT).encode())
        else:
            j = rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        return b"".join(tokens)

    # -- .qkt structure
    def qkt_line(self, data: bytes) -> bytes:
        rng = self.rng
        extreme = rng.choice(EXTREMES)
        candidates = [
            f"PARAM p{rng.randrange(9)} = {extreme}\n",
            f"PARAM fast = {extreme}\n",
            f"PARAM lots = {extreme}\n",
            f"PARAM lookback = {extreme}\n",
            f"PARAM period = {extreme}\n",
            f"LET risk = {extreme}\n",
            "".join(f"LET c{i} = c{i + 1} + 1\n" for i in range(rng.choice((10, 2000))))
            + "LET c2000 = 1\nLET c10 = 1\n",
            f"x{rng.randrange(9)} = EXNESS:EURUSD EVERY {rng.choice(EXTREMES)}m\n",
            f"eur = EXNESS:EURUSD EVERY 1m WARMUP {extreme} BARS\n",
            f"WHEN eur.close > {extreme} THEN BUY eur SIZING {extreme} BRACKET STOP_LOSS BY "
            f"{rng.choice(EXTREMES)} PCT TAKE_PROFIT AT {rng.choice(EXTREMES)}\n",
            f"WHEN eur.close > 0 THEN SELL eur SIZING {extreme} USD\n",
            f"WHEN eur.close > 0 THEN BUY eur SIZING {extreme} PCT OF EQUITY\n",
            f"WHEN ema(eur, {extreme}) > 0 THEN CLOSE eur\n",
            f"WHEN eur.close / ({extreme}) > ACCOUNT.equity THEN FLATTEN\n",
            "RULES\n",
            "SYMBOLS\n",
            f'WHEN eur.close > 0 THEN LOG "{"x" * rng.choice((1, 5000))}"\n',
        ]
        lines = data.splitlines(keepends=True)
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(candidates).encode())
        return b"".join(lines)

    # -- YAML structure
    def yaml_snippet(self, data: bytes) -> bytes:
        lines = data.splitlines(keepends=True)
        lines.insert(self.rng.randrange(len(lines) + 1), self.rng.choice(YAML_SNIPPETS).encode())
        return b"".join(lines)

    def yaml_bomb(self, data: bytes) -> bytes:
        rng = self.rng
        levels = rng.choice((3, 9, 20))
        out = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
        for i in range(1, levels):
            out.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
        bomb = "\n".join(out) + "\n"
        where = rng.choice(("top", "value"))
        if where == "top":
            return bomb.encode() + data
        return data + f"\nextra: *a{levels - 1}\n".encode() if rng.random() < 0.5 else bomb.encode()

    def yaml_tree(self, data: bytes) -> bytes:
        import yaml

        if len(data) > 100_000:  # PyYAML in pure Python: seconds for a large document
            return self.yaml_snippet(data)
        try:
            tree = yaml.safe_load(data)
        except (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return self.yaml_snippet(data)  # what qkt.yamlsrc refuses (!!timestamp x, ...)
        tree = self._tree(tree, 0)
        try:
            dumped = yaml.safe_dump(
                tree, allow_unicode=True, default_flow_style=self.rng.random() < 0.3
            )
        except (yaml.YAMLError, ValueError, TypeError, RecursionError):
            return data
        return dumped.encode()

    def _leaf(self) -> Any:
        rng = self.rng
        choices: list[Any] = [
            None,
            True,
            False,
            0,
            -1,
            2**64,
            10**400 if rng.random() < 0.1 else 10**30,
            float("nan"),
            float("inf"),
            -1e308,
            1.5,
            "",
            "x" * rng.choice((1, 300, 100_000)),
            rng.choice(EXTREMES),
            rng.choice(WEIRD_PATHS),
            rng.choice(("mt5", "paper", "bybit", "replay", "venue", "none", "max", "realtime")),
            rng.choice(("exness", "sim", "a", "b", "EXNESS", "ny-close", "UTC", "Mars/Olympus")),
            rng.choice(("http://h:1", "https://u:p@h", "ftp://x", "http://[::1", "${X}", "$$")),
            [],
            {},
            [1, [2, [3]]],
            {"file": rng.choice(("momentum.qkt", "btc_trend.qkt", "gold_breakout.qkt"))},
            {"lookback": rng.choice(EXTREMES), "lots": rng.choice(EXTREMES)},
        ]
        return rng.choice(choices)

    def _tree(self, node: Any, depth: int) -> Any:
        rng = self.rng
        if depth > 6 or rng.random() < 0.15:
            return self._leaf()
        if isinstance(node, dict) and node:
            key = rng.choice(list(node))
            op = rng.randrange(5)
            if op == 0:
                del node[key]
            elif op == 1:
                node[
                    rng.choice((*map(str, node), "extends", "type", "file", "as", "params", "x"))
                ] = self._leaf()
            elif op == 2:
                node[key] = [node[key]] if rng.random() < 0.5 else {"k": node[key]}
            else:
                node[key] = self._tree(node[key], depth + 1)
            return node
        if isinstance(node, list) and node:
            i = rng.randrange(len(node))
            op = rng.randrange(4)
            if op == 0:
                del node[i]
            elif op == 1:
                node.insert(i, node[i])
            else:
                node[i] = self._tree(node[i], depth + 1)
            return node
        if rng.random() < 0.05:
            nested: Any = node
            for _ in range(rng.choice((10, 70))):
                nested = [nested]
            return nested
        return self._leaf()

    # -- CSV structure
    def csv_cell(self, data: bytes) -> bytes:
        rng = self.rng
        lines = data.splitlines(keepends=True)
        if len(lines) < 2:
            return self.line(data)
        i = rng.randrange(1, len(lines))
        ending = b"\n" if lines[i].endswith(b"\n") else b""
        cells = lines[i].rstrip(b"\r\n").split(b",")
        j = rng.randrange(len(cells))
        if j == 0:
            cells[0] = rng.choice(
                (
                    b"1772409600",
                    b"1772409600000",
                    b"1" + b"0" * 30,
                    b"-1",
                    b"0",
                    b"2026-03-02T00:00:00+14:00",
                    b"2026-03-02 00:00:00.123456",
                    b"0001-01-01T00:00:00",
                    b"9999-12-31T23:59:59Z",
                    b"2026-02-30T00:00:00Z",
                    b"2026-03-02",
                    b"20260302T000000",
                    b"",
                    b"9" * 5000,
                    cells[0] + b"Z",
                    b" " + cells[0] + b" ",
                    "\u2028".encode() + cells[0],
                    cells[0] + "\u00a0".encode(),
                )
            )
        else:
            cells[j] = rng.choice(
                [s.encode() for s in EXTREMES]
                + [b'"1,2"', b'"a\nb"', b" 1 ", b" ", "\u00a0".encode(), b"EURUSD", b"eurusd"]
            )
        lines[i] = b",".join(cells) + ending
        return b"".join(lines)

    def csv_scale(self, data: bytes) -> bytes:
        """Scale every price of some rows by one factor: the bars stay valid, the numbers odd."""
        rng = self.rng
        lines = data.splitlines(keepends=True)
        if len(lines) < 2:
            return data
        factor = Decimal(rng.choice(("1e-300", "1e-9", "0.001", "1000", "1e9", "1e12", "1e300")))
        start = rng.randrange(1, len(lines))
        end = start + rng.choice((1, 5, len(lines)))
        for i in range(start, min(end, len(lines))):
            cells = lines[i].rstrip(b"\r\n").split(b",")
            try:
                prices = [Decimal(c.decode()) * factor for c in cells[1:5]]
            except (ArithmeticError, UnicodeDecodeError):
                continue
            count = 4 if len(cells) >= 5 and b"bid" not in lines[0] else 2
            cells[1 : 1 + count] = [str(p).encode() for p in prices[:count]]
            lines[i] = b",".join(cells) + b"\n"
        return b"".join(lines)

    def csv_row(self, data: bytes) -> bytes:
        rng = self.rng
        lines = data.splitlines(keepends=True)
        if len(lines) < 3:
            return self.line(data)
        i, j = rng.randrange(1, len(lines)), rng.randrange(1, len(lines))
        op = rng.randrange(4)
        if op == 0:
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2:
            lines[i] = lines[i].rstrip(b"\r\n") + b",extra\n"
        else:
            lines[i] = b",".join(lines[i].split(b",")[:-1]) + b"\n"
        return b"".join(lines)

    def csv_header(self, data: bytes) -> bytes:
        rng = self.rng
        lines = data.splitlines(keepends=True) or [b""]
        lines[0] = rng.choice(
            (
                b"time,open,high,low,close,volume,symbol\n",
                b"time,bid,ask\n",
                b"time,bid,ask,volume,symbol\n",
                b"close,low,high,open,time\n",
                b"time,open,high,low,close,open\n",
                b"time,open,high,low,close,symbl\n",
                b"\xef\xbb\xbftime,open,high,low,close,volume\n",
                b"TIME, Open ,HIGH,low,close,volume\n",
                b"time,,high,low,close\n",
                b"\n",
                b"",
            )
        )
        return b"".join(lines)


# ---------------------------------------------------------------- cases and outcomes


@dataclass
class Case:
    target: str
    files: dict[str, bytes]
    extra: dict[str, Any] = field(default_factory=dict)
    primary: str = ""


class Bad(Exception):
    """A wrong answer: qkt said something no clean run says (an internal error, an invariant)."""


class CliCrash(Bad):
    """``qkt`` printed a traceback (exit code 3): the traceback is in ``said``."""

    def __init__(self, said: str, what: str) -> None:
        super().__init__(f"{what}:\n{said[-3000:]}")
        frames = re.findall(r'File "([^"]+)", line (\d+)', said)
        where = "?"
        for filename, line in frames:
            with contextlib.suppress(ValueError):
                relative = Path(filename).resolve().relative_to(ROOT)
                if relative.parts[0] in ("qkt", "cli"):
                    where = f"{relative}:{line}"
        errors = [s for s in said.splitlines() if re.match(r"^[A-Za-z_.]+(Error|Exception)\b", s)]
        kind = errors[-1].split(":")[0] if errors else "traceback"
        self.signature = f"{kind} at {where} (cli)"


class Hang(BaseException):
    """The input ran past its time limit (raised by the interval timer)."""


@dataclass
class Outcome:
    kind: str  # ok, crash, hang
    feature: str = ""
    signature: str = ""
    text: str = ""
    seconds: float = 0.0


def signature_of(exc: BaseException) -> str:
    """The exception's type and the innermost frame of qkt's own code that raised it."""
    where = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        with contextlib.suppress(ValueError):
            relative = path.resolve().relative_to(ROOT)
            if relative.parts[0] in ("qkt", "cli"):
                where = f"{relative}:{frame.lineno}"
    if isinstance(exc, CliCrash):
        return exc.signature
    if isinstance(exc, Bad):
        return f"Bad {re.sub(r'[0-9]+', 'N', str(exc))[:60]}"
    return f"{type(exc).__name__} at {where}"


def check_diagnostics(diags: Sequence[Any], where: str) -> str:
    """Every diagnostic a user sees: a code and a message, never an internal error."""
    from qkt.diagnostics import Diagnostic

    codes = []
    for d in diags:
        if not isinstance(d, Diagnostic):
            raise Bad(f"{where}: not a diagnostic: {d!r:.200}")
        if not d.code or not d.message:
            raise Bad(f"{where}: a diagnostic without code or message: {d!r:.200}")
        if d.code == "internal-error":
            raise Bad(f"{where}: internal-error: {d.message[:300]}")
        if d.line is not None and d.line < 1:
            raise Bad(f"{where}: a diagnostic at line {d.line}: {d.format()[:200]}")
        codes.append(d.code)
    return ",".join(sorted(set(codes)))


def refused(exc: Any, where: str) -> str:
    """A QktError: qkt refused the input cleanly, with diagnostics."""
    if not exc.diagnostics:
        raise Bad(f"{where}: {type(exc).__name__} without diagnostics")
    return "refused:" + check_diagnostics(exc.diagnostics, where)


def print_run(session: Any, events: Sequence[Any], summary: Any) -> None:
    """What ``qkt run`` prints of a session, as text and as JSON (into nothing)."""
    from cli.run import _Printer
    from qkt.routing import StrictMode

    with contextlib.redirect_stdout(io.StringIO()):
        for as_json in (False, True):
            printer = _Printer(as_json, session.name)
            printer.routes(session, True)
            for event in events:
                printer.event(event)
            printer.summary(summary, False, StrictMode(False, "default"))


# ---------------------------------------------------------------- targets


class Fuzz:
    def __init__(self, rng: random.Random, work: Path) -> None:
        from qkt.brokers.registry import BrokerRegistry
        from qkt.config import load_config
        from qkt.validation import Validator

        self.rng = rng
        self.work = work
        self.case_dir = work / "case"  # the input being run
        self.strategies = {p.name: _read(p) for p in sorted(EXAMPLES.glob("*.qkt"))}
        self.strategies["kitchen_sink.qkt"] = KITCHEN_SINK.encode()
        self.strategies["busy.qkt"] = BUSY.encode()
        self.portfolio = _read(EXAMPLES / "portfolio.yaml")
        self.configs = [_read(ROOT / "qkt.config.yaml"), *(c.encode() for c in CONFIG_SEEDS)]
        self.csvs = {p.name: p for p in sorted(DATA.glob("*.csv"))}
        env = {"QKT_NO_CACHE": "1"}
        self.config = load_config(ROOT / "qkt.config.yaml", env=env, cwd=ROOT)
        self.registry = BrokerRegistry.from_config(self.config)
        self.validator = Validator(self.config, env=env, registry=self.registry)
        self.pools: dict[str, list[bytes]] = {}
        self.seen: set[str] = set()
        self.mutator = Mutator(rng, self._any_seed)
        self.targets: dict[str, tuple[int, Callable[[], Case], Callable[[Case, Path], str]]] = {
            "strategy": (20, self.make_strategy, self.run_strategy),
            "run": (22, self.make_run, self.run_run),
            "params": (10, self.make_params, self.run_params),
            "replay": (15, self.make_replay, self.run_replay),
            "config": (12, self.make_config, self.run_config),
            "portfolio": (9, self.make_portfolio, self.run_portfolio),
            "venue": (5, self.make_venue, self.run_venue),
            "cli": (7, self.make_cli, self.run_cli),
        }

    # -- corpus
    def _any_seed(self) -> bytes:
        rng = self.rng
        pick = rng.randrange(4)
        if pick == 0:
            return self.portfolio
        if pick == 1:
            return rng.choice(self.configs)
        if pick == 2:
            return _csv_slice(rng.choice(list(self.csvs.values())), rng, 20)
        return rng.choice(list(self.strategies.values()))

    def pool(self, name: str, seeds: Sequence[bytes]) -> bytes:
        found = self.pools.setdefault(name, list(seeds))
        return self.rng.choice(found)

    def keep(self, case: Case, feature: str) -> None:
        """An input that did something new joins its target's pool (bounded)."""
        key = f"{case.target}|{feature}"
        if key in self.seen or not case.primary:
            return
        if case.target == "run" and not feature.startswith("ran"):
            return  # the run pool keeps strategies that run
        self.seen.add(key)
        found = self.pools.setdefault(case.target, [])
        data = case.files[case.primary]
        if len(data) > 200_000:
            return
        if len(found) >= 400:
            found[self.rng.randrange(8, len(found))] = data
        else:
            found.append(data)

    def replay_rows(self, rows: int | None = None) -> bytes:
        rng = self.rng
        name = rng.choice(
            ["eurusd-1m.csv", "eurusd-1m.csv", "xauusd-1m.csv", "btcusdt-1m.csv", "markets-1m.csv"]
        )
        data = _csv_slice(self.csvs[name], rng, rows or rng.choice((30, 120, 300, 500)))
        if rng.random() < 0.15 and name != "markets-1m.csv":
            data = _ticks_of(data)
        return data

    def strategy_text(self) -> bytes:
        return self.rng.choice(list(self.strategies.values()))

    def overrides(self, names: Sequence[str]) -> list[Any]:
        """Random ``--param`` items (strings) and portfolio-like values ([name, value])."""
        rng = self.rng
        out: list[Any] = []
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            name = rng.choice(
                [*names, *names, "", "fsat", "x" * 300, "é", "a b", "1", "PARAM", "lots "]
                if names
                else ["", "fast", "x"]
            )
            if rng.random() < 0.6:
                value = rng.choice(
                    [*EXTREMES, "true", "FALSE", "'5'", '"x"', "'", "a=b", " 3 ", "1e5", "\x00"]
                )
                out.append(f"{name}={value}" if rng.random() < 0.95 else name)
            else:
                choices: list[Any] = [
                    0,
                    -1,
                    2**70,
                    1.5,
                    float("nan"),
                    float("inf"),
                    True,
                    "5",
                    "",
                    None,
                    [1],
                    {"a": 1},
                    {"decimal": rng.choice(EXTREMES[:20])},
                ]
                out.append([name, rng.choice(choices)])
        return out

    def make_overrides(self, items: Sequence[Any]) -> list[Any] | None:
        from qkt.params import Override, cli_override

        made = []
        for item in items:
            if isinstance(item, str):
                override = cli_override(item)
                if override is None:
                    return None  # a malformed item: the command line refuses it (exit 2)
                made.append(override)
            else:
                name, value = item
                if isinstance(value, dict) and "decimal" in value:
                    try:
                        value = Decimal(value["decimal"])
                    except ArithmeticError:
                        value = value["decimal"]
                made.append(Override(str(name), value, "fuzz.yaml:3", "fuzz.yaml", 3, 5))
        return made

    # -- strategy
    def make_strategy(self) -> Case:
        data = self.mutator.mutate(self.pool("strategy", list(self.strategies.values())), "qkt")
        return Case("strategy", {"s.qkt": data}, primary="s.qkt")

    def run_strategy(self, case: Case, here: Path) -> str:
        from qkt.dsl import order_actions, parse_strategy_file, static_quantity

        path = here / "s.qkt"
        parsed = parse_strategy_file(path)
        feature = check_diagnostics(parsed.diagnostics, "parse")
        if parsed.strategy is None:
            return "none:" + feature
        for action in order_actions(parsed.strategy):
            static_quantity(parsed.strategy, action)
        report = self.validator.strategy(path, parsed=parsed)
        check_diagnostics(report.diagnostics, "validate")
        for route in report.routes:
            route.to_json()
        return ("ok:" if parsed.ok else "bad:") + feature

    # -- run
    def make_run(self) -> Case:
        rng = self.rng
        kind = "gentle-qkt" if rng.random() < 0.8 else "qkt"
        data = self.mutator.mutate(
            self.pool("run", list(self.strategies.values())), kind, rng.choice((0, 1, 1, 2, 3))
        )
        replay = self.replay_rows()
        if rng.random() < 0.3:
            replay = self.mutator.mutate(replay, "gentle-csv", 1)
        names = re.findall(rb"PARAM\s+([A-Za-z_][A-Za-z0-9_]*)", data)
        extra = {
            "overrides": self.overrides([n.decode() for n in names]) if rng.random() < 0.3 else [],
            "strict": rng.random() < 0.2,
        }
        return Case("run", {"s.qkt": data, "r.csv": replay}, extra, "s.qkt")

    def session_run(
        self,
        here: Path,
        strategy: Any,
        params: Any,
        replay: Path,
        strict: bool = False,
        registry: Any = None,
        balance: Decimal | None = None,
    ) -> str:
        """Check ``replay``, then run a paper session over it: events and summary must agree."""
        from qkt.engine.events import OrderFilled, OrderRejected, OrderRequest
        from qkt.errors import QktError
        from qkt.feeds.replay import ReplaySource
        from qkt.session import LiveSession

        events: list[Any] = []
        try:
            source = ReplaySource(replay)
            symbols = [s.symbol for s in strategy.streams]
            warnings = source.check(symbols).raise_for_errors()
            check_diagnostics(warnings, "replay check")
            session = LiveSession(
                strategy,
                registry or self.registry,
                strict=strict,
                params=params,
                path=str(here / "s.qkt"),
                paper_only=True,
                on_event=events.append,
                starting_balance=Decimal(10000) if balance is None else balance,
            )
            check_diagnostics(session.warnings, "session")
        except QktError as exc:
            return refused(exc, "session")
        try:
            for row in source:
                session.on_row(row)
        except QktError as exc:
            raise Bad(f"the replay was checked ok but failed while replaying: {exc}") from None
        summary = session.finish()
        fills = sum(isinstance(e, OrderFilled) for e in events)
        rejected = sum(isinstance(e, OrderRejected) for e in events)
        if summary.fills != fills:
            raise Bad(f"summary.fills {summary.fills} but {fills} fill events")
        if summary.rejected != rejected:
            raise Bad(f"summary.rejected {summary.rejected} but {rejected} rejected events")
        for money in (summary.realized_pnl, summary.final_equity, summary.max_drawdown):
            if not money.is_finite():
                raise Bad(f"summary holds a non-finite amount {money}")
        print_run(session, events, summary)
        orders = sum(isinstance(e, OrderRequest) for e in events)
        return f"ran:{min(orders, 3)}:{min(fills, 3)}:{min(rejected, 3)}"

    def run_run(self, case: Case, here: Path) -> str:
        from qkt.dsl import parse_strategy_file
        from qkt.params import apply_params

        parsed = parse_strategy_file(here / "s.qkt")
        feature = check_diagnostics(parsed.diagnostics, "parse")
        if not parsed.ok or parsed.strategy is None:
            return "bad:" + feature
        overrides = self.make_overrides(case.extra.get("overrides", []))
        if overrides is None:
            return "usage"
        params, problems = apply_params(parsed.strategy, overrides, path=str(here / "s.qkt"))
        if problems:
            return "params:" + check_diagnostics(problems, "params")
        return self.session_run(
            here, parsed.strategy, params, here / "r.csv", bool(case.extra.get("strict"))
        )

    # -- params
    def make_params(self) -> Case:
        rng = self.rng
        name = rng.choice(list(self.strategies))
        data = self.strategies[name]
        names = [n.decode() for n in re.findall(rb"PARAM\s+([A-Za-z_][A-Za-z0-9_]*)", data)]
        extra = {"overrides": self.overrides(names) or [f"{rng.choice(names or ['x'])}=0"]}
        return Case("params", {"s.qkt": data, "r.csv": self.replay_rows(120)}, extra)

    def run_params(self, case: Case, here: Path) -> str:
        from qkt.dsl import order_actions, parse_strategy_file, static_quantity
        from qkt.params import apply_params
        from qkt.routing import order_sizes, plan_routes

        parsed = parse_strategy_file(here / "s.qkt")
        if parsed.strategy is None:
            return "none"
        strategy = parsed.strategy
        overrides = self.make_overrides(case.extra["overrides"])
        if overrides is None:
            return "usage"
        params, problems = apply_params(strategy, overrides, path=str(here / "s.qkt"))
        feature = check_diagnostics(problems, "params")
        for action in order_actions(strategy):
            static_quantity(strategy, action, params)
        list(order_sizes(strategy, params))
        plan = plan_routes(strategy, self.registry, False, path=str(here / "s.qkt"), params=params)
        check_diagnostics(plan.diagnostics, "plan")
        if problems:
            return "params:" + feature
        return self.session_run(here, strategy, params, here / "r.csv")

    # -- replay
    def make_replay(self) -> Case:
        rng = self.rng
        seed = self.replay_rows(rng.choice((5, 40, 200)))
        base = self.pool("replay", [seed]) if rng.random() < 0.5 else seed
        data = self.mutator.mutate(base, "gentle-csv" if rng.random() < 0.4 else "csv")
        strategy = rng.choice((BUSY.encode(), KITCHEN_SINK.encode(), self.strategy_text()))
        return Case("replay", {"r.csv": data, "s.qkt": strategy}, primary="r.csv")

    def run_replay(self, case: Case, here: Path) -> str:
        from qkt.dsl import parse_strategy_file
        from qkt.feeds.replaycheck import check_replay, check_replay_text

        parsed = parse_strategy_file(here / "s.qkt")
        assert parsed.strategy is not None
        symbols = [s.symbol for s in parsed.strategy.streams]
        path = here / "r.csv"
        report = check_replay(path, symbols)
        feature = check_diagnostics(report.diagnostics, "replay check")
        for d in report.diagnostics:
            if d.is_error and d.path != str(path):
                raise Bad(f"a replay error that does not name the file: {d.format()[:200]}")
        raw = case.files["r.csv"]
        with contextlib.suppress(UnicodeDecodeError):
            text = raw.decode("utf-8")
            if "\r" not in text and "\x00" not in text:
                held = check_replay_text(text, str(path), symbols)
                check_diagnostics(held.diagnostics, "replay text check")
                if held.ok != report.ok:
                    raise Bad(f"check_replay says ok={report.ok}, check_replay_text ok={held.ok}")
        outcome = self.session_run(here, parsed.strategy, {}, path)
        return f"{'ok' if report.ok else 'bad'}:{feature}:{outcome}"

    # -- config
    def make_config(self) -> Case:
        rng = self.rng
        data = self.mutator.mutate(self.pool("config", self.configs), "yaml")
        env: dict[str, str] = {}
        for _ in range(rng.choice((0, 0, 1, 2, 3))):
            var = rng.choice(
                (
                    "QKT_BROKER_EXNESS_MAGIC",
                    "QKT_BROKER_EXNESS_GATEWAY_URL",
                    "QKT_BROKER_SIM_TYPE",
                    "QKT_BROKER_SIM_SLIPPAGE_BPS",
                    "QKT_BROKER_SIM_CONTRACT_SIZES",
                    "QKT_BROKER_NEW_TYPE",
                    "QKT_BROKER__TYPE",
                    "QKT_BROKER_EXNESS_PERSONAL_ALIASES",
                    "QKT_STRICT_BROKERS",
                    "TOKEN",
                    "X",
                    "UNSET",
                    "BYBIT_API_KEY",
                )
            )
            env[var] = rng.choice(
                [*EXTREMES[:12], "paper", "mt5", "{}", '{"EURUSD": 1e400}', "[1]", "maybe", "1"]
            )
        env["QKT_NO_CACHE"] = "1" if rng.random() < 0.5 else ""
        env["XDG_CACHE_HOME"] = str(self.work / "cache")
        labels = [rng.choice(("SIM", "EXNESS", "A", "B", "C", "PAPER", "NEW", "BYBIT"))]
        streams = "".join(
            f"s{i} = {label}:EURUSD EVERY 1m\n" for i, label in enumerate([*labels, "SIM"])
        )
        strategy = BUSY.replace(
            "eur = EXNESS:EURUSD EVERY 1m\n", "eur = SIM:EURUSD EVERY 1m\n" + streams
        )
        files = {
            "qkt.config.yaml": data,
            "s.qkt": strategy.encode(),
            "r.csv": self.replay_rows(120),
        }
        return Case("config", files, {"env": env}, "qkt.config.yaml")

    def run_config(self, case: Case, here: Path) -> str:
        from qkt.brokers.registry import BrokerRegistry
        from qkt.config import load_config
        from qkt.dsl import parse_strategy_file
        from qkt.errors import ConfigError
        from qkt.routing import resolve_strict
        from qkt.validation import Validator, config_report

        env = dict(case.extra.get("env", {}))
        path = here / "qkt.config.yaml"
        try:
            config = load_config(path, env=env, cwd=here)
        except ConfigError as exc:
            return refused(exc, "config")
        feature = check_diagnostics(config.diagnostics, "config")
        for profile in config.profiles.values():
            profile.public_fields()
        try:
            resolve_strict(None, env, config.strict_brokers, config.strict_brokers_source)
        except ConfigError as exc:
            return refused(exc, "strict")
        registry = BrokerRegistry.from_config(config)
        validator = Validator(config, env=env, registry=registry)
        report = validator.validate([here / "s.qkt", path])
        check_diagnostics(report.all_diagnostics(), "validate")
        report.to_json()
        check_diagnostics(config_report(path, env, None).diagnostics, "config report")
        parsed = parse_strategy_file(here / "s.qkt")
        assert parsed.strategy is not None
        balance = Decimal(config.paper.starting_balance)
        outcome = self.session_run(
            here, parsed.strategy, {}, here / "r.csv", registry=registry, balance=balance
        )
        return f"ok:{feature}:{outcome}"

    # -- portfolio
    def make_portfolio(self) -> Case:
        rng = self.rng
        data = self.mutator.mutate(self.pool("portfolio", [self.portfolio]), "yaml")
        files = {"portfolio.yaml": data}
        for name in ("momentum.qkt", "btc_trend.qkt", "gold_breakout.qkt"):
            files[name] = self.strategies[name]
        if rng.random() < 0.2:
            files["gold_breakout.qkt"] = self.mutator.mutate(files["gold_breakout.qkt"], "qkt")
        return Case("portfolio", files, {"scan": rng.random() < 0.2}, "portfolio.yaml")

    def run_portfolio(self, case: Case, here: Path) -> str:
        from qkt.portfolio import load_portfolio

        path = here / "portfolio.yaml"
        portfolio, diags = load_portfolio(path)
        feature = check_diagnostics(diags, "load portfolio")
        report = self.validator.portfolio(path)
        check_diagnostics(report.all_diagnostics(), "validate portfolio")
        report.to_json()
        if case.extra.get("scan"):
            scanned = self.validator.validate([here])
            check_diagnostics(scanned.all_diagnostics(), "validate dir")
            scanned.to_json()
        return f"{portfolio is not None}:{feature}"

    # -- venue quotes
    def make_venue(self) -> Case:
        rng = self.rng
        quotes = []
        msc = 1772409600000 + 3_600_000
        for _ in range(rng.choice((1, 3, 8))):
            msc += rng.choice((0, 1000, 60_000))
            bid: Any = rng.choice(["1.0851", 1.0851, *EXTREMES[:20], 1e308, -1e308, "abc", None])
            ask: Any = rng.choice(["1.0853", 1.0853, bid, *EXTREMES[:14]])
            when: Any = rng.choice([msc, msc, 0, -1, 10**20, 2**63, "x", 1.5, None])
            body: Any = {"symbol": "EURUSDm", "bid": bid, "ask": ask, "time_msc": when}
            if rng.random() < 0.1:
                body = rng.choice(([], "x", None, {"ok": True, "data": body}, {"bid": bid}))
            text = json.dumps(body) if rng.random() < 0.9 else "{" + rng.choice(EXTREMES)
            quotes.append(text)
        zone = rng.choice(("UTC", "ny-close", "Asia/Tokyo"))
        files = {"s.qkt": BUSY.encode(), "r.csv": _csv_slice(self.csvs["eurusd-1m.csv"], rng, 60)}
        return Case("venue", files, {"quotes": quotes, "zone": zone})

    def run_venue(self, case: Case, here: Path) -> str:
        import httpx

        from qkt.brokers.mt5.client import GatewayClient, GatewayError
        from qkt.brokers.notices import Outage
        from qkt.config.timezones import server_zone
        from qkt.dsl import parse_strategy_file
        from qkt.engine.events import VenueNotice
        from qkt.feeds.replay import ReplaySource
        from qkt.feeds.venue import VenueQuotes, _Poll
        from qkt.session import LiveSession

        parsed = parse_strategy_file(here / "s.qkt")
        assert parsed.strategy is not None
        session = LiveSession(parsed.strategy, self.registry, paper_only=True)
        for row in ReplaySource(here / "r.csv"):  # a position opens on these rows
            session.on_row(row)
        answers = iter(case.extra["quotes"])

        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, text=next(answers, "{}"))

        notices: list[VenueNotice] = []
        session.bus.subscribe(VenueNotice, notices.append)

        async def read_all() -> int:
            client = GatewayClient(
                "http://fuzz", transport=httpx.MockTransport(handler), retry_attempts=1, backoff_s=0
            )
            outage = Outage(session.bus, session.clock, "exness", "quotes of EURUSDm")
            zone = server_zone(case.extra["zone"])
            poll = _Poll("EXNESS", "EURUSD", "EURUSDm", None, outage, zone)
            quotes = VenueQuotes.__new__(VenueQuotes)
            count = 0
            try:
                for _ in case.extra["quotes"]:
                    try:  # one read, as the venue's shared quote poller hands it over
                        quote: Any = await client.quote("EURUSDm")
                    except GatewayError as exc:
                        quote = exc
                    row = quotes._read(poll, quote)
                    if row is not None:
                        session.on_row(row)
                        count += 1
            finally:
                await client.aclose()
            return count

        count = asyncio.run(read_all())
        summary = session.finish()
        for money in (summary.final_equity, summary.max_drawdown):
            if not money.is_finite():
                raise Bad(f"a venue quote made the summary non-finite: {money}")
        return f"venue:{min(count, 2)}:{len(notices)}"

    # -- the command line
    def make_cli(self) -> Case:
        rng = self.rng
        if rng.random() < 0.5:
            data = self.mutator.mutate(self.pool("run", list(self.strategies.values())), "qkt", 1)
            replay = self.replay_rows()
            if rng.random() < 0.2:
                replay = self.mutator.mutate(replay, "csv", 1)
            names = [n.decode() for n in re.findall(rb"PARAM\s+([A-Za-z_][A-Za-z0-9_]*)", data)]
            argv = ["run", "s.qkt", "--replay", "r.csv", "--paper"]
            config = None
            if rng.random() < 0.3:  # paper profiles of a mutated configuration trade it
                config = self.mutator.mutate(self.pool("config", self.configs), "yaml", 1)
                data = data.replace(b"EXNESS:", b"SIM:")
            for item in self.overrides(names):
                if isinstance(item, str):
                    argv += ["--param", item]
            # Only speeds that replay at once or are refused: a slow replay is not a hang.
            speed = rng.choice(("max", "0", "-1", "nan", "inf", "1e400", "abc", "", "1e300"))
            argv += rng.choice(([], ["--json"], ["--speed", speed]))
            argv += rng.choice(([], [], ["--strict-brokers"], ["--no-strict-brokers"]))
            files = {"s.qkt": data, "r.csv": replay}
            primary = "s.qkt"
            if config is not None:
                files["qkt.config.yaml"] = config
        else:
            kind = rng.randrange(3)
            if kind == 0:
                files = {"s.qkt": self.mutator.mutate(self.strategy_text(), "qkt")}
                primary, target = "s.qkt", "s.qkt"
            elif kind == 1:
                files = {"portfolio.yaml": self.mutator.mutate(self.portfolio, "yaml")}
                for name in ("momentum.qkt", "btc_trend.qkt", "gold_breakout.qkt"):
                    files[name] = self.strategies[name]
                primary, target = "portfolio.yaml", rng.choice(("portfolio.yaml", "."))
            else:
                files = {"qkt.config.yaml": self.mutator.mutate(rng.choice(self.configs), "yaml")}
                files["s.qkt"] = self.strategy_text()
                primary, target = "qkt.config.yaml", rng.choice(("qkt.config.yaml", "s.qkt", "."))
            argv = ["validate", target]
            argv += rng.choice(([], ["--format", "json"], ["--format", "github"]))
            argv += rng.choice(([], [], ["--strict-brokers"]))
        return Case("cli", files, {"argv": argv}, primary)

    def run_cli(self, case: Case, here: Path) -> str:
        from cli.main import main

        argv = ["qkt", *case.extra["argv"]]
        out, err = io.StringIO(), io.StringIO()
        saved = sys.argv
        sys.argv = argv
        code: int | str | None = 0
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                main()
        except SystemExit as exc:
            code = exc.code
        finally:
            sys.argv = saved
        if code == 130:  # Ctrl-C reached qkt run first: it is the fuzzer's
            raise KeyboardInterrupt
        said = err.getvalue()
        shown = " ".join(argv[1:])[:120]
        if code == 3 or "Traceback" in said:
            raise CliCrash(said, f"qkt {shown} exited {code}")
        if code not in (0, 1, 2):
            raise Bad(f"qkt {shown} exited {code!r}")
        if code in (1, 2) and not (said.strip() or out.getvalue().strip()):
            raise Bad(f"qkt {shown} exited {code} saying nothing")
        return f"cli:{argv[1]}:{code}"


# ---------------------------------------------------------------- running inputs


class Runner:
    def __init__(self, fuzz: Fuzz, timeout: float) -> None:
        self.fuzz = fuzz
        self.timeout = timeout
        self.armed = False
        self.current: tuple[Case, float] | None = None
        signal.signal(signal.SIGALRM, self._alarm)

    def _alarm(self, signum: int, frame: FrameType | None) -> None:
        if self.armed:
            self.armed = False
            raise Hang

    def materialise(self, case: Case) -> Path:
        here = self.fuzz.case_dir
        if here.exists():
            shutil.rmtree(here, ignore_errors=True)
        here.mkdir(parents=True)
        write_case(here, case, {})
        return here

    def once(self, case: Case, timeout: float | None = None) -> Outcome:
        here = self.materialise(case)
        run = self.fuzz.targets[case.target][2]
        previous = Path.cwd()
        os.chdir(here)
        started = time.monotonic()
        self.current = (case, started)
        try:
            self.armed = True
            signal.setitimer(signal.ITIMER_REAL, timeout or self.timeout)
            try:
                feature = run(case, here)
            finally:
                self.armed = False
                signal.setitimer(signal.ITIMER_REAL, 0)
            return Outcome("ok", feature, seconds=time.monotonic() - started)
        except Hang:
            return Outcome("hang", signature="hang", text=f"over {timeout or self.timeout} s")
        except (Exception, RecursionError, MemoryError) as exc:
            text = "".join(traceback.format_exception(exc))
            return Outcome("crash", signature=signature_of(exc), text=text)
        finally:
            self.armed = False
            self.current = None
            os.chdir(previous)

    def judge(self, case: Case) -> Outcome:
        outcome = self.once(case)
        if outcome.kind == "hang":  # a busy machine is not a hang: it must time out twice
            again = self.once(case)
            if again.kind != "hang":
                return again
        return outcome

    def minimise(self, case: Case, outcome: Outcome, seconds: float = 20) -> Case:
        """Drop chunks of lines of the input's main file while it still fails the same way."""
        if not case.primary or outcome.kind != "crash":
            return case
        deadline = time.monotonic() + seconds
        lines = case.files[case.primary].splitlines(keepends=True)
        chunk = max(1, len(lines) // 2)
        while chunk >= 1 and time.monotonic() < deadline:
            i, shrunk = 0, False
            while i < len(lines) and time.monotonic() < deadline:
                trial = lines[:i] + lines[i + chunk :]
                candidate = Case(
                    case.target,
                    {**case.files, case.primary: b"".join(trial)},
                    case.extra,
                    case.primary,
                )
                again = self.once(candidate, min(self.timeout, 3.0))
                if again.kind == "crash" and again.signature == outcome.signature:
                    lines, shrunk = trial, True
                else:
                    i += chunk
            if not shrunk:
                chunk //= 2
        return Case(
            case.target, {**case.files, case.primary: b"".join(lines)}, case.extra, case.primary
        )


def write_case(where: Path, case: Case, more: dict[str, Any]) -> None:
    for name, data in case.files.items():
        (where / name).write_bytes(data)
    meta = {
        "target": case.target,
        "primary": case.primary,
        "extra": case.extra,
        **more,
        "files": sorted(case.files),
    }
    (where / "case.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")


def save(out: Path, case: Case, outcome: Outcome) -> Path:
    digest = hashlib.sha256(outcome.signature.encode()).hexdigest()[:10]
    where = out / f"{outcome.kind}-{case.target}-{digest}"
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    write_case(where, case, {"kind": outcome.kind, "signature": outcome.signature})
    (where / "outcome.txt").write_text(
        f"{outcome.kind}: {outcome.signature}\n\n{outcome.text}\n"
        f"reproduce: python scripts/fuzz.py --reproduce {where}\n"
    )
    return where


def load_case(where: Path) -> Case:
    meta = json.loads((where / "case.json").read_text())
    files = {name: (where / name).read_bytes() for name in meta["files"]}
    return Case(meta["target"], files, meta["extra"], meta["primary"])


# ---------------------------------------------------------------- the process


def isolate(work: Path) -> None:
    """No QKT_* setting of the caller, HOME and XDG dirs inside ``work``, plain output."""
    for key in list(os.environ):
        if key.startswith("QKT_") or key.startswith("BYBIT_"):
            del os.environ[key]
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        NO_COLOR="1",
    )


def cap_memory(megabytes: int) -> None:
    """Allocations past the cap raise MemoryError (a crash) instead of exhausting the machine."""
    used = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    limit = used + megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


class Stats:
    def __init__(self) -> None:
        self.inputs = 0
        self.crashes = 0
        self.hangs = 0
        self.by_target: dict[str, int] = {}
        self.signatures: dict[str, Path] = {}
        self.lock = threading.Lock()

    def last_line(self) -> str:
        return f"fuzz: {self.inputs} inputs, {self.crashes} crashes, {self.hangs} hangs"


def watchdog(runner: Runner, stats: Stats, out: Path, limit: float, stop: threading.Event) -> None:
    """An input stuck where the timer cannot interrupt it (inside C code): save it, say so,
    and end the process, so the fuzzer itself never hangs."""
    while not stop.wait(0.25):
        current = runner.current
        if current is None:
            continue
        case, started = current
        if time.monotonic() - started > limit:
            with stats.lock:
                outcome = Outcome(
                    "hang", signature="stuck", text=f"over {limit:.0f} s, not interruptible"
                )
                where = save(out, case, outcome)
                stats.inputs += 1
                stats.hangs += 1
                print(f"hang   {case.target}: stuck over {limit:.0f} s -> {where}", flush=True)
                print(stats.last_line(), flush=True)
            os._exit(1)


def fuzz(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="qkt-fuzz-"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="qkt-fuzz-work-"))
    stats = Stats()
    stop = threading.Event()
    try:
        isolate(work)
        rng = random.Random(seed)
        fz = Fuzz(rng, work)
        # Inputs run in the output directory: one that kills the process (a fatal signal in C
        # code) is left there, named by the traceback faulthandler prints.
        fz.case_dir = out / "current"
        faulthandler.enable()
        runner = Runner(fz, args.timeout)
        cap_memory(args.memory_mb)
        threading.Thread(
            target=watchdog,
            args=(runner, stats, out, args.timeout * 3 + 10, stop),
            daemon=True,
        ).start()
        chosen = [t for t in fz.targets if not args.targets or t in args.targets.split(",")]
        weights = [fz.targets[t][0] for t in chosen]
        print(
            f"fuzz: seed {seed}, {args.budget:g} s, targets {','.join(chosen)}, out {out}",
            flush=True,
        )
        start = time.monotonic()
        said = start
        shrink = min(20.0, max(2.0, args.budget / 20))  # seconds to minimise one crasher
        slow = 0  # inputs saved for taking more than half the time limit
        unmade = 0  # inputs the mutators failed to make
        ending: list[int] = []  # SIGTERM: stop after this input, and say how it went
        signal.signal(signal.SIGTERM, lambda signum, frame: ending.append(signum))
        while time.monotonic() - start < args.budget and not ending:
            target = rng.choices(chosen, weights)[0]
            try:
                case = fz.targets[target][1]()
            except (Exception, RecursionError):  # the fuzzer's own bug: say it once, go on
                if not unmade:
                    traceback.print_exc()
                unmade += 1
                continue
            try:
                outcome = runner.judge(case)
            except KeyboardInterrupt:
                print("fuzz: interrupted", flush=True)
                break
            with stats.lock:
                stats.inputs += 1
                stats.by_target[target] = stats.by_target.get(target, 0) + 1
            if outcome.kind == "ok":
                fz.keep(case, outcome.feature)
                if outcome.seconds > args.timeout / 2 and slow < 5:  # not a hang: worth a look
                    slow += 1
                    took = f"{outcome.seconds:.1f} s"
                    where = save(out, case, Outcome("slow", signature=f"{took} ({slow})"))
                    print(f"slow   {target}: {took}, not a hang -> {where}", flush=True)
            else:
                with stats.lock:
                    if outcome.kind == "crash":
                        stats.crashes += 1
                    else:
                        stats.hangs += 1
                key = f"{target}|{outcome.signature}"
                if key not in stats.signatures:
                    small = runner.minimise(case, outcome, shrink)
                    where = save(out, small, outcome)
                    stats.signatures[key] = where
                    print(f"{outcome.kind:6} {target}: {outcome.signature} -> {where}", flush=True)
            now = time.monotonic()
            if now - said >= 10:
                said = now
                counts = " ".join(f"{t} {n}" for t, n in sorted(stats.by_target.items()))
                print(
                    f"  {now - start:5.0f} s  {stats.inputs} inputs ({counts}); "
                    f"{stats.crashes} crashes, {stats.hangs} hangs, {len(stats.signatures)} distinct",
                    flush=True,
                )
        if unmade:
            print(f"fuzz: {unmade} inputs could not be made (the fuzzer's bug, above)", flush=True)
    finally:
        stop.set()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out / "current", ignore_errors=True)
    print(stats.last_line(), flush=True)
    return 0 if stats.crashes + stats.hangs == 0 else 1


def reproduce(where: Path, timeout: float) -> int:
    case = load_case(where)
    work = Path(tempfile.mkdtemp(prefix="qkt-fuzz-work-"))
    try:
        isolate(work)
        fz = Fuzz(random.Random(0), work)
        outcome = Runner(fz, timeout).once(case)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{case.target}: {outcome.kind} {outcome.signature or outcome.feature}")
    if outcome.text:
        print(outcome.text)
    return 0 if outcome.kind == "ok" else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("budget", nargs="?", type=float, default=60.0, help="seconds to fuzz")
    parser.add_argument("--seed", type=int, help="random seed (default: a new one, printed)")
    parser.add_argument("--out", help="where crashers and hangs are saved (default: a temp dir)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds one input may take")
    parser.add_argument("--memory-mb", type=int, default=2048, help="memory cap above start-up")
    parser.add_argument("--targets", help="comma-separated subset of the targets")
    parser.add_argument("--reproduce", metavar="DIR", help="run one saved case again")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.reproduce:
        return reproduce(Path(args.reproduce), args.timeout)
    return fuzz(args)


if __name__ == "__main__":
    sys.exit(main())
