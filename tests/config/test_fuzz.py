"""Malformed input never crashes the loader: anything wrong is a ConfigError (SPEC §8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qkt.config import load_config
from qkt.config.builtins import FIELDS
from qkt.errors import ConfigError
from tests.conftest import ROOT

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROOT_TEXT = (ROOT / "qkt.config.yaml").read_text()
KEYS = sorted({k for fields in FIELDS.values() for k in fields} | {"extends", "colour"})


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _try(folder: Path, text: str, env: dict[str, str] | None = None) -> None:
    (folder / "qkt.config.yaml").write_text(text, encoding="utf-8")
    try:
        config = load_config(None, env={"QKT_NO_CACHE": "1", **(env or {})}, cwd=folder)
    except ConfigError as exc:
        assert exc.diagnostics
        assert any(d.severity == "error" for d in exc.diagnostics)
        for d in exc.diagnostics:
            assert d.code and d.message
            assert d.line is None or d.line >= 1
        return
    for profile in config.profiles.values():
        assert profile.type in ("mt5", "bybit", "paper")
        assert isinstance(profile.target, str)
        profile.public_fields()


@FAST
@given(st.text(alphabet=st.sampled_from(list(":- \n\t{}[]#'\"!&*|>%@`,?abcxyz019$_")), max_size=80))
def test_yamlish_text(folder: Path, text: str) -> None:
    _try(folder, text)


@FAST
@given(st.text(max_size=60))
def test_arbitrary_unicode(folder: Path, text: str) -> None:
    _try(folder, "brokers:\n  exness:\n    " + text)


leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["mt5", "bybit", "paper", "exness", "http://h:1", "${X}", "${Y:-3}", "$$"]),
)
tree = st.recursive(
    leaf,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=10,
)


@FAST
@given(st.data())
def test_mutated_root_config(folder: Path, data: st.DataObject) -> None:
    doc: Any = yaml.safe_load(ROOT_TEXT)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(["top", "profile", "new"]))
        brokers = doc.get("brokers")
        profiles = (
            sorted(k for k, v in brokers.items() if isinstance(v, dict))
            if isinstance(brokers, dict)
            else []
        )
        if where == "top" or not isinstance(brokers, dict):
            doc[data.draw(st.sampled_from([*doc, "colour"]))] = data.draw(tree)
        elif where == "profile" and profiles:
            profile = data.draw(st.sampled_from(profiles))
            brokers[profile][data.draw(st.sampled_from(KEYS))] = data.draw(tree)
        else:
            brokers[data.draw(st.text(max_size=6))] = data.draw(tree)
    env = data.draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "QKT_BROKER_EXNESS_MAGIC",
                    "QKT_BROKER_EXNESS_PERSONAL_ALIASES",
                    "QKT_BROKER_SIM_TYPE",
                    "QKT_BROKER_NEW_TYPE",
                    "QKT_BROKER_NEW_GATEWAY_URL",
                    "QKT_BROKER_BYBIT_TESTNET",
                    "QKT_BROKER__TYPE",
                    "X",
                ]
            ),
            st.text(max_size=10) | st.sampled_from(["mt5", "paper", "{}", '{"a": 1}', "7"]),
            max_size=3,
        )
    )
    _try(folder, yaml.safe_dump(doc, allow_unicode=True), env)
