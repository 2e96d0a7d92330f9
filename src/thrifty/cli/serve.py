"""``thrifty serve`` and ``thrifty fake-upstream``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

from thrifty.cli.common import ConfigOption, console, load


def serve(
    host: str | None = typer.Option(None, "--host", help="Bind address (default from config)."),
    port: int | None = typer.Option(None, "--port", "-p"),
    workers: int = typer.Option(1, "--workers", "-w", min=1),
    config: Path | None = ConfigOption,
    log_level: str = typer.Option("warning", "--log-level"),
) -> None:
    """Run the gateway (uvicorn with uvloop + httptools)."""
    import uvicorn

    cfg = load(config)  # validate before forking workers
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    host = host or cfg.server.host
    port = cfg.server.port if port is None else port
    console.print(f"Thrifty on http://{host}:{port}/v1  (config: {cfg.source}, workers: {workers})")
    if config is not None:
        os.environ["THRIFTY_CONFIG"] = str(config)
    uvicorn.run(
        "thrifty.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level=log_level,
        access_log=False,
        server_header=False,  # no `server: uvicorn` on every answer (nor the version hint)
    )


def fake_upstream(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(18080, "--port", "-p"),
    first_token_ms: float = typer.Option(0.0, "--first-token-ms"),
    per_token_ms: float = typer.Option(0.0, "--per-token-ms"),
) -> None:
    """Run a fake OpenAI-compatible upstream (deterministic answers, fault injection)."""
    from thrifty.testing import Latency
    from thrifty.testing.fake_openai import run_fake_upstream

    run_fake_upstream(host, port, Latency(first_token_ms=first_token_ms, per_token_ms=per_token_ms))
