"""The JSON Schema (draft 2020-12) of qkt.config.yaml, built from the pydantic models.

The file accepts more than a resolved profile, and the schema says so:

- ``brokers`` values are a union discriminated by ``type`` (``oneOf`` + ``discriminator``);
- a profile that ``extends:`` another may omit ``type``, and a profile named like a built-in
  (``exness``, ``icmarkets``, ``ftmo``, ``pepperstone``, ``backtest``, ``paper``) may omit anything;
- no field is required: a profile overriding or extending another sets only what it changes
  (the loader checks that a fresh profile sets ``gateway_url`` and ``magic``);
- any number, boolean or choice may be written as ``${VAR}`` / ``${VAR:-default}``.
"""

from __future__ import annotations

from typing import Any

from qkt.config.builtins import BUILTIN_PROFILES
from qkt.config.models import PROFILE_MODELS, ConfigFile

DIALECT = "https://json-schema.org/draft/2020-12/schema"
VARIABLE = {
    "type": "string",
    "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
    "description": "${VAR} or ${VAR:-default}, expanded from the environment.",
}
_KEEP = ("title", "description", "default")


def _needs_variable(prop: dict[str, Any]) -> bool:
    """A leaf that a plain string does not satisfy: numbers, booleans, choices."""
    if "$ref" in prop or "const" in prop:
        return False
    if "anyOf" in prop:
        return any(_needs_variable(p) for p in prop["anyOf"])
    return "enum" in prop or prop.get("type") in ("integer", "number", "boolean")


def _allow_variables(schema: dict[str, Any]) -> None:
    for name, prop in list(schema.get("properties", {}).items()):
        if _needs_variable(prop):
            inner = {k: v for k, v in prop.items() if k not in _KEEP}
            outer = {k: prop[k] for k in _KEEP if k in prop}
            schema["properties"][name] = {
                **outer,
                "anyOf": [*inner.get("anyOf", [inner]), {"$ref": "#/$defs/Variable"}],
            }


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of qkt.config.yaml, for editors and CI (``qkt config schema``)."""
    schema = ConfigFile.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    refs: dict[str, str] = {}
    for kind, model in PROFILE_MODELS.items():
        sub = model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        sub.pop("required", None)  # overrides and extends set only what they change
        sub["properties"]["type"] = {
            "const": kind,
            "type": "string",
            "description": "The protocol: mt5, bybit or paper.",
        }
        sub["properties"]["extends"] = {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_-]*$",
            "description": "Inherit every field of this profile (built-in or from this file).",
        }
        defs[model.__name__] = sub
        refs[kind] = f"#/$defs/{model.__name__}"
    for sub in defs.values():
        _allow_variables(sub)
    _allow_variables(schema)
    defs["Variable"] = VARIABLE
    typed = {
        "oneOf": [{"$ref": ref, "required": ["type"]} for ref in refs.values()],
        "discriminator": {"propertyName": "type", "mapping": refs},
    }
    extending = {
        "anyOf": [{"$ref": ref, "required": ["extends"]} for ref in refs.values()],
        "not": {"required": ["type"]},
    }
    builtins = {
        name: {
            "anyOf": [{"$ref": refs[given["type"]]}, {"type": "null"}],
            "description": f"Override of the built-in `{name}` profile: set only what changes.",
        }
        for name, given in BUILTIN_PROFILES.items()
    }
    schema["properties"]["brokers"] = {
        "type": "object",
        "description": "Broker profiles by name: the lowercased label of a stream.",
        "propertyNames": {"pattern": "^[a-z0-9][a-z0-9_-]*$"},
        "properties": builtins,
        "additionalProperties": {
            "anyOf": [typed, extending],
            "description": "A profile with a `type`, or one that `extends` another.",
        },
        "default": {},
    }
    _drop_decimal_patterns(schema)
    return {
        "$schema": DIALECT,
        "title": "qkt.config.yaml",
        **{k: v for k, v in schema.items() if k not in ("title", "$schema")},
    }


def _drop_decimal_patterns(node: Any) -> None:
    """Remove the regex pydantic attaches to decimals-as-strings.

    Its presence changes between pydantic releases (2.13 emits it, 2.14 does not), and the loader
    validates decimals itself; without it the exported schema is the same on every install.
    """
    if isinstance(node, dict):
        if node.get("type") == "string" and str(node.get("pattern", "")).startswith(
            "^(?!^[-+.]*$)"
        ):
            del node["pattern"]
        for value in node.values():
            _drop_decimal_patterns(value)
    elif isinstance(node, list):
        for value in node:
            _drop_decimal_patterns(value)
