"""How each journal record is written as a row of its table, and read back.

Decimals are written with ``str`` and read with ``Decimal`` (exact, never a float); times as ISO-8601
UTC; params as a JSON object whose numbers are the Decimals written exactly (``0.10`` stays
``0.10``, and reads back as ``Decimal("0.10")``, not as a float or a string).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from qkt.daemon.records import (
    Deployment,
    DeploymentRecord,
    DeploymentState,
    Fill,
    Order,
    OrderRecord,
    PaperPosition,
    Param,
    Replay,
)

Row = tuple[Any, ...]

DEPLOYMENT_COLUMNS = (
    "name, portfolio, strategy, file, source, params, strict, state, reason, since, "
    "replay_csv, replay_speed, created, updated"
)
ORDER_COLUMNS = (
    "deployment, client_id, tag, profile, alias, label, symbol, broker_symbol, side, qty, time, "
    "stop_loss, take_profit, reduce_only, state, reason, fill_price, fill_qty, updated"
)
FILL_COLUMNS = (
    "deployment, client_id, label, symbol, side, qty, price, reason, time, commission, alias, route"
)
POSITION_COLUMNS = (
    "deployment, account, label, symbol, qty, avg_price, realized, stop_loss, take_profit, "
    "legs_client_id"
)


def marks(columns: str) -> str:
    """``?, ?, …``, one per column of ``columns``."""
    return ", ".join("?" * (columns.count(",") + 1))


# ---------------------------------------------------------------- values
def dec(value: Decimal) -> str:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"not a finite Decimal: {value!r}")
    return str(value)


def opt_dec(value: Decimal | None) -> str | None:
    return None if value is None else dec(value)


def read_dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def utc(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"a naive datetime cannot be journaled: {value!r}")
    return value.astimezone(UTC).isoformat()


def read_utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def params_json(params: Mapping[str, Param]) -> str:
    parts: list[str] = []
    for name, value in params.items():
        if isinstance(value, bool | str):
            encoded = json.dumps(value)
        elif isinstance(value, Decimal | int):
            encoded = dec(Decimal(value))
        else:
            raise ValueError(f"param {name!r} is not a Decimal, bool or str: {value!r}")
        parts.append(f"{json.dumps(str(name))}: {encoded}")
    return "{" + ", ".join(parts) + "}"


def read_params(text: str) -> dict[str, Param]:
    return dict(json.loads(text, parse_float=Decimal, parse_int=Decimal))


# ---------------------------------------------------------------- rows
def deployment_row(d: Deployment, state: DeploymentState, now: str) -> Row:
    csv, speed = (None, None) if d.replay is None else (d.replay.csv, d.replay.speed)
    params = params_json(d.params)
    reason = None
    return (
        d.name, d.portfolio, d.strategy, d.file, d.source, params, int(d.strict), state, reason,
        now, csv, speed, now, now,
    )  # fmt: skip


def deployment_record(row: Sequence[Any]) -> DeploymentRecord:
    deployment = Deployment(
        name=row[0],
        portfolio=row[1],
        strategy=row[2],
        file=row[3],
        source=row[4],
        params=read_params(row[5]),
        strict=bool(row[6]),
        replay=None if row[10] is None else Replay(row[10], row[11]),
    )
    since, created, updated = (read_utc(row[i]) for i in (9, 12, 13))
    return DeploymentRecord(deployment, row[7], row[8], since, created, updated)


def order_row(o: Order, now: str) -> Row:
    state, reason, fill_price, fill_qty = "sent", None, None, None
    return (
        o.deployment, o.client_id, o.tag, o.profile, o.alias, o.label, o.symbol, o.broker_symbol,
        o.side, dec(o.qty), utc(o.time), opt_dec(o.stop_loss), opt_dec(o.take_profit),
        int(o.reduce_only), state, reason, fill_price, fill_qty, now,
    )  # fmt: skip


def order_record(row: Sequence[Any]) -> OrderRecord:
    order = Order(
        deployment=row[0],
        client_id=row[1],
        tag=row[2],
        profile=row[3],
        alias=row[4],
        label=row[5],
        symbol=row[6],
        broker_symbol=row[7],
        side=row[8],
        qty=Decimal(row[9]),
        time=read_utc(row[10]),
        stop_loss=read_dec(row[11]),
        take_profit=read_dec(row[12]),
        reduce_only=bool(row[13]),
    )
    return OrderRecord(
        order, row[14], row[15], read_dec(row[16]), read_dec(row[17]), read_utc(row[18])
    )


def fill_row(f: Fill) -> Row:
    return (
        f.deployment, f.client_id, f.label, f.symbol, f.side, dec(f.qty), dec(f.price), f.reason,
        utc(f.time), dec(f.commission), f.alias, f.route,
    )  # fmt: skip


def fill_record(row: Sequence[Any]) -> Fill:
    return Fill(
        deployment=row[0],
        client_id=row[1],
        label=row[2],
        symbol=row[3],
        side=row[4],
        qty=Decimal(row[5]),
        price=Decimal(row[6]),
        reason=row[7],
        time=read_utc(row[8]),
        commission=Decimal(row[9]),
        alias=row[10],
        route=row[11],
    )


def position_row(deployment: str, account: str, p: PaperPosition) -> Row:
    return (
        deployment, account, p.label, p.symbol, dec(p.qty), dec(p.avg_price), dec(p.realized),
        opt_dec(p.stop_loss), opt_dec(p.take_profit), p.legs_client_id,
    )  # fmt: skip


def position_record(row: Sequence[Any]) -> PaperPosition:
    """A position from ``POSITION_COLUMNS`` without the first two (deployment, account)."""
    return PaperPosition(
        label=row[0],
        symbol=row[1],
        qty=Decimal(row[2]),
        avg_price=Decimal(row[3]),
        realized=Decimal(row[4]),
        stop_loss=read_dec(row[5]),
        take_profit=read_dec(row[6]),
        legs_client_id=row[7],
    )
