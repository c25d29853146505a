"""Shared fixtures: a settings folder in tmp_path, the app built from it, and helpers to run passes."""

from __future__ import annotations

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

from databases import database_url  # noqa: F401  (a fixture: SQLite and PostgreSQL)

QUESTIONS = load_questions(REPO / "questions.txt")


@pytest.fixture
def settings_path(tmp_path: Path) -> Path:
    return make_settings(tmp_path / "site")


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
