"""Database URLs for tests that must hold on SQLite and on PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mailflow import testing

from service_env import require_env


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server; dropped afterwards."""
    with testing.fresh_postgres_database(require_env("MAILFLOW_TEST_POSTGRES_URL")) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite:///db/mailflow.db"
        return
    with fresh_postgres_database() as url:
        yield url


__all__ = ["database_url", "fresh_postgres_database"]
