"""Fixtures for the ledger tests: a fresh PostgreSQL database per test (``pg_url``)."""

from __future__ import annotations

from tests.pg import pg_url_fixture

pg_url = pg_url_fixture()
