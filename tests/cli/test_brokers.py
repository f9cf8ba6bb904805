"""``qkt brokers list|show`` and ``qkt config schema`` in-process."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Runner
from tests.conftest import Writer

SECRET = "s3cr3t-value-4f9a"


def test_list_shows_builtins_with_builtin_provenance(qkt: Runner) -> None:
    result = qkt("brokers", "list", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["schema"] == "qkt.brokers/1"
    by_name = {p["name"]: p for p in data["profiles"]}
    assert {"exness", "icmarkets", "ftmo", "pepperstone"} <= set(by_name)
    exness = by_name["exness"]
    assert exness["type"] == "mt5"
    assert exness["fields"]["gateway_url"] == {
        "value": "http://localhost:5001",
        "source": "builtin",
    }
    assert exness["fields"]["symbol_suffix"]["value"] == "m"
    assert exness["fields"]["magic"]["value"] == 10001


def test_env_override_shows_env_provenance(qkt: Runner, root: Path) -> None:
    var = "QKT_BROKER_EXNESS_PERSONAL_GATEWAY_URL"
    result = qkt(
        "brokers", "show", "exness-personal", "--json", env={var: "http://10.1.2.3:5005"}, cwd=root
    )
    assert result.code == 0, result.err
    fields = result.json()["profiles"][0]["fields"]
    assert fields["gateway_url"] == {"value": "http://10.1.2.3:5005", "source": f"env:{var}"}
    assert fields["magic"]["value"] == 10005
    assert fields["magic"]["source"].startswith("config:qkt.config.yaml:")
    assert fields["symbol_suffix"] == {"value": "m", "source": "extends:exness"}


def test_secrets_are_masked_in_every_output(qkt: Runner, write: Writer) -> None:
    cfg = write(
        "qkt.config.yaml",
        "brokers:\n  bybit:\n    type: bybit\n    api_key: ${BYBIT_API_KEY}\n"
        "    api_secret: ${BYBIT_API_SECRET}\n",
    )
    env = {"BYBIT_API_KEY": SECRET, "BYBIT_API_SECRET": SECRET + "x"}
    outputs = [
        qkt("brokers", "list", cwd=cfg.parent, env=env),
        qkt("brokers", "list", "--json", cwd=cfg.parent, env=env),
        qkt("brokers", "show", "bybit", cwd=cfg.parent, env=env),
        qkt("brokers", "show", "bybit", "--json", cwd=cfg.parent, env=env),
    ]
    for result in outputs:
        assert result.code == 0, result.err
        assert SECRET not in result.out + result.err
    fields = outputs[3].json()["profiles"][0]["fields"]
    assert fields["api_key"]["value"] == "***"
    assert fields["api_secret"]["value"] == "***"
    assert "***" in outputs[2].out


def test_show_unknown_profile_suggests_the_closest(qkt: Runner) -> None:
    result = qkt("brokers", "show", "exnes")
    assert result.code == 1
    assert "error[unknown-profile]" in result.err
    assert "did you mean `exness`?" in result.err


def test_show_is_case_insensitive(qkt: Runner) -> None:
    result = qkt("brokers", "show", "EXNESS", "--json")
    assert result.code == 0
    assert result.json()["profiles"][0]["name"] == "exness"


def test_config_schema_matches_the_checked_in_file(qkt: Runner, root: Path) -> None:
    result = qkt("config", "schema")
    assert result.code == 0
    schema = json.loads(result.out)
    assert schema == json.loads((root / "docs" / "qkt.config.schema.json").read_text())
    assert "brokers" in schema["properties"]


def test_config_schema_writes_a_file(qkt: Runner, tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    result = qkt("config", "schema", "-o", str(out))
    assert result.code == 0
    assert json.loads(out.read_text())["properties"]["brokers"]
