"""Helpers shared by commands: reading global options and loading the configuration."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from cli.main import Globals
    from qkt.config import ResolvedConfig


def globals_of(ctx: typer.Context) -> Globals:
    from cli.main import Globals

    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals()


def load(ctx: typer.Context) -> ResolvedConfig:
    """Load the configuration named by ``--config`` (or discovered); raises ConfigError."""
    from qkt.config import load_config

    return load_config(globals_of(ctx).config, env=os.environ)
