"""``python -m thrifty`` runs the CLI."""

from thrifty.cli.main import app

app()
