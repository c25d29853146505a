"""The same database behaviour on SQLite and PostgreSQL: schema, numbering, idempotence."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import Session, SQLModel, select

from mailflow import models  # noqa: F401  (registers the tables)
from mailflow.app import build_app
from mailflow.config import load_settings
from mailflow.migrate import upgrade
from mailflow.models import Interview, OutboxItem
from mailflow.testing import make_reply, make_settings
from mailflow.worker import run_pass

from conftest import QUESTIONS, deliver
from databases import database_url  # noqa: F401  (fixture)

FULL = {n: f"Answer {n}." for n in range(1, 9)}


def test_migrations_create_exactly_the_models_schema(database_url: str, tmp_path: Path) -> None:
    app = build_app(load_settings(make_settings(tmp_path, database=database_url)))
    with app.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    app.close()
    assert differences == [], "models changed without a migration: run mailflow.migrate.make_revision"


def test_upgrading_twice_changes_nothing_and_keeps_data(database_url: str, tmp_path: Path) -> None:
    app = build_app(load_settings(make_settings(tmp_path, database=database_url)))
    deliver(app, make_reply(FULL, questions=QUESTIONS))
    run_pass(app)
    upgrade(app.engine)
    with Session(app.engine) as session:
        assert [i.number for i in session.exec(select(Interview))] == [1]
    assert "interview" in inspect(app.engine).get_table_names()
    app.close()


def test_numbers_are_gapless_and_replies_single_on_both_databases(database_url: str, tmp_path: Path) -> None:
    app = build_app(load_settings(make_settings(tmp_path, database=database_url)))
    for index in range(6):
        deliver(app, make_reply(FULL, sender=f"P{index} <p{index}@example.net>", questions=QUESTIONS,
                                message_id=f"<db-{index}@example.net>"))
    deliver(app, make_reply(FULL, sender="P0 <p0@example.net>", questions=QUESTIONS, message_id="<db-0@example.net>"))
    run_pass(app)
    run_pass(app)
    with Session(app.engine) as session:
        numbers = [i.number for i in session.exec(select(Interview).order_by(Interview.number))]
        items = session.exec(select(OutboxItem)).all()
    app.close()
    assert numbers == [1, 2, 3, 4, 5, 6]
    assert sorted(item.recipient for item in items) == [f"p{i}@example.net" for i in range(6)]
    assert {item.state for item in items} == {"sent"}
