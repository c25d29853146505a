"""Shared fixtures: a settings folder in tmp_path, the app built from it, and helpers to run passes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailflow.app import App, build_app
from mailflow.config import load_settings
from mailflow.questions import load_questions
from mailflow.sources.delivery import deliver_to_maildir
from mailflow.testing import REPO, make_settings

from databases import database_url, fresh_postgres_database  # noqa: F401  (database_url: a fixture)

QUESTIONS = load_questions(REPO / "questions.txt")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests in a module marked `both_databases` run twice: on SQLite and on PostgreSQL
    (which, unlike SQLite, refuses a value longer than its column, and leases rows)."""
    everywhere = os.environ.get("MAILFLOW_TEST_BOTH_DATABASES") == "1"  # every such test, for a deeper check
    marked = everywhere or metafunc.definition.get_closest_marker("both_databases")
    if "database_backend" in metafunc.fixturenames and marked:
        metafunc.parametrize("database_backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def database_backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def settings_path(tmp_path: Path, database_backend: str) -> Iterator[Path]:
    if database_backend == "postgresql":
        with fresh_postgres_database() as url:
            yield make_settings(tmp_path / "site", database=url)
        return
    yield make_settings(tmp_path / "site")


@pytest.fixture
def app(settings_path: Path) -> Iterator[App]:
    application = build_app(load_settings(settings_path))
    yield application
    application.close()


def deliver(app: App, raw: bytes) -> Path:
    return deliver_to_maildir(app.settings.incoming.path("path"), raw)


def outbox_messages(app: App) -> list[EmailMessage]:
    """Every email in the Maildir outbox, in the order they were queued."""
    folder = app.settings.outgoing.path("path") / "new"
    if not folder.exists():
        return []
    return [
        message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for path in sorted(folder.iterdir())
    ]


def site_path(app: App) -> Path:
    return app.settings.blog.path("path")
