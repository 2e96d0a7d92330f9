"""The ``thrifty`` command: a thin shell over the library (Typer + Rich)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="thrifty",
    help="Thrifty: an OpenAI-compatible LLM gateway that cuts spend and proves every saving.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _register() -> None:
    from thrifty.cli import (
        analyze,
        budgets,
        cache,
        cache_ops,
        db,
        demo,
        keys,
        prices,
        report,
        route,
        router,
        serve,
    )

    app.command()(serve.serve)
    app.command("fake-upstream")(serve.fake_upstream)
    app.command()(demo.demo)
    app.add_typer(keys.app, name="keys")
    app.add_typer(db.app, name="db")
    app.add_typer(prices.app, name="prices")
    app.add_typer(report.app, name="report")
    cache_ops.register(cache.app)
    app.add_typer(cache.app, name="cache")
    app.add_typer(router.app, name="router")
    app.add_typer(budgets.app, name="budgets")
    app.add_typer(route.app, name="route")
    app.add_typer(analyze.app, name="analyze")


_register()
