"""Shared CLI helpers: load the config (exiting with its message on error), run coroutines."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from thrifty.config import Config, resolve_config
from thrifty.errors import ConfigError, ThriftyError

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)

ConfigOption = typer.Option(
    None, "--config", "-c", help="YAML config file (default: $THRIFTY_CONFIG, else env/fake)."
)


def print_table(table: Any) -> None:
    """Print a wide table at full width when the output is a file or a pipe (Rich would wrap
    it at 80 columns), and at the terminal's width otherwise."""
    if not console.is_terminal:
        console.width = 220
    console.print(table)


def load(config_path: Path | None) -> Config:
    try:
        return resolve_config(config_path)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except ThriftyError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
