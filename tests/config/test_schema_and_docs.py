"""The JSON Schema stays in sync with the models and accepts what the loader accepts; the
documentation's examples load."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from qkt.config import config_json_schema, load_config
from tests.config.conftest import Loader, Raiser
from tests.conftest import ROOT

SCHEMA_FILE = ROOT / "docs" / "qkt.config.schema.json"
DOCS = ROOT / "docs" / "configuration.md"


def test_checked_in_schema_matches_the_models() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == config_json_schema(), (
        "docs/qkt.config.schema.json is out of date: run python scripts/gen_config_schema.py"
    )


def test_schema_shape() -> None:
    schema = config_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    brokers = schema["properties"]["brokers"]
    typed, extending = brokers["additionalProperties"]["anyOf"]
    assert extending["not"] == {"required": ["type"]}  # no type: must extend
    assert typed["discriminator"] == {
        "propertyName": "type",
        "mapping": {
            "mt5": "#/$defs/Mt5Profile",
            "bybit": "#/$defs/BybitProfile",
            "paper": "#/$defs/PaperProfile",
        },
    }
    assert "required" not in schema["$defs"]["Mt5Profile"]  # overrides set only what changes
    assert set(brokers["properties"]) == {
        "exness",
        "icmarkets",
        "ftmo",
        "pepperstone",
        "backtest",
        "paper",
    }


@pytest.fixture(scope="module")
def validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = config_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


VALID = [
    "brokers:\n  exness:\n    magic: 3\n",
    "brokers:\n  exness:\n",
    "brokers:\n  twin:\n    extends: exness\n    gateway_url: http://x:1\n",
    "brokers:\n  sim:\n    type: paper\n    quotes_from: exness\n    slippage_bps: 0.5\n",
    "brokers:\n  lab:\n    type: mt5\n    gateway_url: http://x:1\n    magic: ${LAB_MAGIC}\n",
    "brokers:\n  b:\n    type: bybit\n    testnet: ${TESTNET:-true}\n    category: ${CAT:-spot}\n",
    "market_data:\n  source: replay\n  replay: {path: x.csv, speed: 2.5}\n",
    "strict_brokers: ${STRICT:-false}\npaper:\n  starting_balance: '100.25'\n",
    "brokers:\n  exness:\n    magic: 4294967295\n    ready_timeout_ms: 5000\n",
]
INVALID = [
    "strict_broker: true\n",
    "brokers:\n  exness:\n    gatway_url: http://x:1\n",
    "brokers:\n  lab:\n    gateway_url: http://x:1\n",
    "brokers:\n  lab:\n    type: mt4\n",
    "brokers:\n  lab:\n    type: mt5\n    api_secret: x\n",
    "brokers:\n  Lab:\n    type: paper\n",
    "brokers:\n  lab:\n    type: paper\n    slippage_bps: -1\n",
    "market_data:\n  source: radio\n",
    "brokers:\n  exness:\n    magic: true\n",
    "brokers:\n  exness:\n    magic: 4294967296\n",
    "brokers:\n  exness:\n    ready_timeout_ms: 0\n",
]


@pytest.mark.parametrize("text", VALID)
def test_schema_accepts_what_the_loader_accepts(
    validator: Any, load: Loader, text: str, tmp_path: Path
) -> None:
    validator.validate(yaml.safe_load(text))
    (tmp_path / "x.csv").write_text("time,open,high,low,close\n")  # a replay source must exist
    load(text, LAB_MAGIC="4")


@pytest.mark.parametrize("text", INVALID)
def test_schema_rejects_what_the_loader_rejects(validator: Any, raises: Raiser, text: str) -> None:
    assert list(validator.iter_errors(yaml.safe_load(text)))
    assert any(d.severity == "error" for d in raises(text))


def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.S)


def test_root_config_validates_against_the_schema(validator: Any) -> None:
    validator.validate(yaml.safe_load((ROOT / "qkt.config.yaml").read_text()))


@pytest.mark.parametrize("index", range(3))
def test_cookbook_examples_load_cleanly(validator: Any, tmp_path: Path, index: int) -> None:
    blocks = _yaml_blocks()
    assert len(blocks) == 3
    validator.validate(yaml.safe_load(blocks[index]))
    (tmp_path / "qkt.config.yaml").write_text(blocks[index])
    config = load_config(None, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path)
    assert config.diagnostics == ()


def test_every_error_code_is_documented() -> None:
    text = DOCS.read_text()
    sources = "".join(p.read_text() for p in (ROOT / "qkt" / "config").glob("*.py"))
    sources += (ROOT / "qkt" / "yamlsrc.py").read_text()
    codes = set(re.findall(r'(?:fail|warn|error)\(\s*"([a-z][a-z0-9-]+)"', sources))
    codes |= set(re.findall(r'Problem\(\s*"([a-z][a-z0-9-]+)"', sources))
    codes |= set(re.findall(r'_at\(\s*\w+,\s*"([a-z][a-z0-9-]+)"', sources))
    codes |= {"bad-value", "bad-url"}
    assert codes >= {"unknown-key", "missing-field", "yaml-duplicate-key", "unset-variable"}
    undocumented = sorted(c for c in codes if f"`{c}`" not in text)
    assert not undocumented, f"error codes missing from docs/configuration.md: {undocumented}"
