"""``thrifty db upgrade|current``: database migrations."""

from __future__ import annotations

from pathlib import Path

import typer

from thrifty.cli.common import ConfigOption, console, load, run
from thrifty.db.engine import make_engine
from thrifty.db.migrate import current_revision, upgrade

app = typer.Typer(help="Database schema migrations (Alembic).")


@app.command("upgrade")
def upgrade_cmd(config: Path | None = ConfigOption) -> None:
    """Apply all migrations to the configured database."""
    cfg = load(config)

    async def go() -> str | None:
        engine = make_engine(cfg.database.url)
        try:
            await upgrade(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    console.print(f"database at revision [bold]{run(go())}[/bold]")


@app.command("current")
def current_cmd(config: Path | None = ConfigOption) -> None:
    """Print the database's migration revision."""
    cfg = load(config)

    async def go() -> str | None:
        engine = make_engine(cfg.database.url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    console.print(run(go()) or "(empty database)")
