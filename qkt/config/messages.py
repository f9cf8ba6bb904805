"""Pydantic validation errors rewritten as short, user-facing messages.

``magic: input should be a valid integer, unable to parse string as an integer`` becomes
``magic must be an integer from 1 to 4294967295, got 'abc'``: the expectation is read from the
field's type and constraints, so it stays right when a model changes. A secret's value is never
shown.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr

from qkt.config.builtins import SECRET_FIELDS
from qkt.config.models import without_credentials
from qkt.diagnostics import did_you_mean

_NAMES: dict[object, str] = {
    int: "an integer",
    float: "a number",
    Decimal: "a number",
    bool: "true or false",
    str: "a string",
    SecretStr: "a string",
    dict: "a mapping",
}
_URL_FIELDS = frozenset({"gateway_url", "base_url"})


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation problem: ``loc`` is the field path (``instrument_overrides.EURUSD.digits``)."""

    code: str
    loc: tuple[str, ...]
    message: str
    hint: str | None = None


def _walk(
    model: type[BaseModel], loc: tuple[Any, ...]
) -> tuple[tuple[str, ...], Any, list[Any], type[BaseModel]]:
    """Follow ``loc`` through ``model``: (field path, annotation, constraints, owning model).

    Stops at the first segment that is no field (an unknown key, or pydantic's tag of a union
    member), so every error about one field maps to the same path.
    """
    path: list[str] = []
    annotation: Any = model
    metadata: list[Any] = []
    owner = model
    for segment in loc:
        annotation = _optional(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(segment))
            if field is None:
                owner = annotation
                break
            owner = annotation
            annotation, metadata = field.annotation, list(field.metadata)
        elif get_origin(annotation) is dict:
            annotation, metadata = get_args(annotation)[1], []
        else:
            break
        path.append(str(segment))
    return tuple(path), annotation, metadata, owner


def _optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _alternatives(annotation: Any, metadata: list[Any]) -> list[str]:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = get_args(annotation)
        constraints = [*metadata]
        for item in extra:
            constraints.extend(getattr(item, "metadata", [item]))
        return _alternatives(base, constraints)
    if origin in (Union, types.UnionType):
        out: list[str] = []
        for arg in get_args(annotation):
            if arg is not type(None):
                out.extend(_alternatives(arg, metadata))
        return out
    if origin is Literal:
        return [str(a) for a in get_args(annotation)]
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return ["a mapping"]
    name = _NAMES.get(annotation, "a valid value")
    bounds = {
        attr: getattr(item, attr)
        for item in metadata
        for attr in ("gt", "ge", "lt", "le")
        if getattr(item, attr, None) is not None
    }
    if annotation is int and bounds.keys() & {"gt", "ge"} and bounds.keys() & {"lt", "le"}:
        low = bounds["gt"] + 1 if "gt" in bounds else bounds["ge"]
        high = bounds["lt"] - 1 if "lt" in bounds else bounds["le"]
        return [f"{name} from {low} to {high}"]
    signs = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return [" ".join([name, *(f"{signs[attr]} {bound}" for attr, bound in bounds.items())])]


def expectation(annotation: Any, metadata: list[Any]) -> str:
    alts = _alternatives(annotation, metadata)
    return alts[0] if len(alts) == 1 else ", ".join(alts[:-1]) + " or " + alts[-1]


def suggest(key: str, fields: list[str]) -> str | None:
    """``did you mean `x`?``: the closest field, or the one field that contains ``key``."""
    close = did_you_mean(key, fields)
    if close is not None or len(key) < 3:
        return close
    containing = [f for f in fields if key.lower() in f]
    return f"did you mean `{containing[0]}`?" if len(containing) == 1 else None


def shown(value: Any) -> str:
    """How an offending input is quoted in a message."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return str(value)


def problems(errors: list[Any], model: type[BaseModel]) -> list[Problem]:
    """One problem per field from pydantic's ``errors()`` (union members collapse into one)."""
    out: dict[tuple[str, ...], Problem] = {}
    for err in errors:
        loc = tuple(err["loc"])
        path, annotation, metadata, owner = _walk(model, loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            path = (*path, key)
            problem = Problem(
                "unknown-key",
                path,
                f"unknown key `{key}`",
                suggest(key, list(owner.model_fields)),
            )
        elif kind == "missing":
            problem = Problem("missing-field", path, f"`{'.'.join(path)}` is required")
        else:
            secret = bool(SECRET_FIELDS & set(path))
            given = err.get("input")
            if path and path[-1] in _URL_FIELDS and isinstance(given, str):
                given = without_credentials(given)  # user:password@ is never shown
            whole = kind == "value_error" and isinstance(given, dict)  # a check across keys
            got = "" if secret or whole else f", got {shown(given)}"
            if kind == "value_error":
                reason = str(err["ctx"]["error"]) if "ctx" in err else str(err["msg"])
            else:
                reason = f"must be {expectation(annotation, metadata)}"
            code = "bad-url" if path and path[-1] in _URL_FIELDS else "bad-value"
            problem = Problem(code, path, f"`{'.'.join(path)}` {reason}{got}")
        out.setdefault(path, problem)
    return list(out.values())
