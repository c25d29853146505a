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
        deliver(
            app,
            make_reply(
                FULL,
                sender=f"P{index} <p{index}@example.net>",
                questions=QUESTIONS,
                message_id=f"<db-{index}@example.net>",
            ),
        )
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


def test_a_database_made_by_the_first_release_is_upgraded_with_its_data(database_url: str, tmp_path: Path) -> None:
    """Build the schema as release 0001 left it, with an interview in it, then let mailflow start."""
    from alembic import command

    from mailflow.db import make_engine
    from mailflow.migrate import alembic_config

    settings = load_settings(make_settings(tmp_path, database=database_url))
    engine = make_engine(database_url, tmp_path)
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.exec_driver_sql(
            "INSERT INTO inbound_message (source_key, message_id, raw, size, arrived_at, state, reason, rule_hits,"
            " sender_hash, filing, attempts, updated_at) VALUES ('k1', '<old@x>', '', 0, '2025-01-02 10:00:00+00:00',"
            " 'numbered', 'interview-00001', '', 'h', 'filed', 0, '2025-01-02 10:00:00+00:00')"
        )
        connection.exec_driver_sql(
            "INSERT INTO interview (number, inbound_id, sender_hash, answers_json, submitted_on, updated_at)"
            ' VALUES (1, 1, \'h\', \'[{"question": "Q?", "answer": "Old answer."}]\', \'2025-01-02\','
            " '2025-01-02 10:00:00+00:00')"
        )
        connection.exec_driver_sql("INSERT INTO counter (name, value) VALUES ('interview', 1)")
    engine.dispose()
    app = build_app(settings)
    deliver(app, make_reply(FULL, questions=QUESTIONS))
    run_pass(app)
    with Session(app.engine) as session:
        interviews = session.exec(select(Interview).order_by(Interview.number)).all()
    app.close()
    assert [(i.number, i.related_json) for i in interviews][:1] == [(1, "[]")]
    assert [i.number for i in interviews] == [1, 2]
    assert "Old answer." in interviews[0].answers_json


def test_every_named_state_fits_its_column() -> None:
    """PostgreSQL refuses a value longer than its column (SQLite stores it anyway): a state
    name that does not fit would fail only there, and only when that state is reached."""
    from mailflow.models import Comment, InboundMessage, OutboxItem, Publication
    from mailflow.states import CommentState, FilingState, InboundState, OutboxState, PublicationState

    columns = [
        (InboundMessage, "state", InboundState), (InboundMessage, "filing", FilingState),
        (OutboxItem, "state", OutboxState), (Publication, "state", PublicationState), (Comment, "state", CommentState),
    ]  # fmt: skip
    too_long = [
        f"{model.__name__}.{column} {value!r}"
        for model, column, states in columns
        for value in states
        if len(value) > model.__table__.columns[column].type.length  # type: ignore[attr-defined]
    ]
    assert too_long == []


def test_storing_many_rows_counts_only_the_new_ones(database_url: str, tmp_path: Path) -> None:
    """Fetching stores a batch with one INSERT ... ON CONFLICT DO NOTHING and counts what was
    new (another worker may have stored the rest): right past SQLAlchemy's 1,000-row pages."""
    from datetime import UTC, datetime

    from mailflow.db import insert_new, transaction
    from mailflow.models import InboundMessage

    app = build_app(load_settings(make_settings(tmp_path, database=database_url)))
    try:

        def rows(numbers: range) -> list[dict[str, object]]:
            return [
                InboundMessage(source_key=f"k{n}", raw=b"x", arrived_at=datetime.now(UTC)).model_dump(exclude={"id"})
                for n in numbers
            ]

        with transaction(app.engine) as session:
            assert insert_new(session, InboundMessage, rows(range(0, 2500, 2)), key="source_key") == 1250
        with transaction(app.engine) as session:
            assert insert_new(session, InboundMessage, rows(range(2500)), key="source_key") == 1250
        with transaction(app.engine) as session:
            assert insert_new(session, InboundMessage, rows(range(2500)), key="source_key") == 0
            assert len(session.exec(select(InboundMessage.id)).all()) == 2500
    finally:
        app.close()
