"""Engine, sessions and transactions: the only module that knows SQLite from PostgreSQL.

On SQLite every transaction starts with BEGIN IMMEDIATE, so that two processes never both
read the counter and then fight over the write lock; on PostgreSQL the counter row is
locked with SELECT ... FOR UPDATE (see numbering.py).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, Insert, create_engine, event, insert, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel, select

from mailflow.errors import ConfigError
from mailflow.states import now

T = TypeVar("T", bound=SQLModel)
LEASE = timedelta(minutes=5)
SLOWEST_ITEM = timedelta(seconds=60)  # a blog or mail server at its timeout, with a retry


def sqlite_path(url: str, base_dir: Path) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database)
    return path if path.is_absolute() else base_dir / path


def make_engine(url: str, base_dir: Path, timeout: float = 30) -> Engine:
    """Create the engine; a relative SQLite path resolves against the settings folder."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - SQLAlchemy raises several types for a bad URL; all mean the same here
        raise ConfigError(f"[mailflow] database is not a database address: {url!r}.") from None
    path = sqlite_path(url, base_dir)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed.set(database=str(path)), connect_args={"timeout": timeout})
        _make_sqlite_transactions_immediate(engine, timeout)
        return engine
    return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": max(1, int(timeout))})


def _make_sqlite_transactions_immediate(engine: Engine, timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def claim(session: Session, model: type[T], row_id: int, *conditions: Any) -> T | None:
    """Lock one row for this transaction if it still meets `conditions`; None if another worker
    holds it (PostgreSQL: FOR UPDATE SKIP LOCKED) or it has moved on. On SQLite the
    transaction's write lock already keeps other processes out."""
    query = select(model).where(model.id == row_id, *conditions).with_for_update(skip_locked=True)  # type: ignore[attr-defined]
    return session.exec(query).first()


def add_row(session: Session, model: type[SQLModel], **values: Any) -> int:
    """Insert one row now, without the ORM; returns its id. For rows the hot path writes and
    does not change again in the same transaction (an interview, its page, a reply): half
    the ORM's cost for each, and there at once for any later query in the transaction, with
    no flush to think of. Column defaults apply as they do through the ORM."""
    key = session.connection().execute(_insert_into(model), values).inserted_primary_key
    assert key is not None
    return int(key[0])


@cache
def _insert_into(model: type[SQLModel]) -> Insert:
    return insert(model)


def insert_new(session: Session, model: type[SQLModel], rows: list[dict[str, Any]], key: str) -> int:
    """Insert the rows whose `key` is new; a row another worker stored first is skipped."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    # The rows as parameters of one statement (executemany, sent as few multi-row INSERTs):
    # five times cheaper than a statement built with every row's values in it. RETURNING a
    # column, not text: SQLAlchemy then gathers the rows of every page it sends, not the last.
    statement = insert(model).on_conflict_do_nothing(index_elements=[key]).returning(getattr(model, key))
    return len(session.connection().execute(statement, rows).all())


def lock_key(session: Session, key: str, *, wait: bool = True, shared: bool = False) -> bool:
    """Serialise work on one key across workers until this transaction ends. With
    wait=False, returns False at once if another worker holds it; `shared`: side by side
    with others that take it shared, never with one that holds it whole. SQLite needs
    nothing: BEGIN IMMEDIATE already lets one writer in at a time."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    function = ("pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock") + ("_shared" if shared else "")
    statement = text(f"SELECT {function}(hashtextextended(:key, 0))").bindparams(key=key)
    held = session.exec(statement).scalar()  # type: ignore[call-overload]
    return wait or bool(held)


@contextmanager
def turn(engine: Engine, key: str) -> Iterator[bool]:
    """Hold `key` for as long as the block lasts, across its transactions (a fetch commits
    a batch at a time); yields False at once if another worker holds it. On PostgreSQL a
    lock of this connection's session, so that a worker that dies lets go of it; SQLite
    needs nothing: the run lock already lets one pass in at a time."""
    if is_sqlite(engine):
        yield True
        return
    with engine.connect() as connection:
        held = bool(connection.execute(_TRY_SESSION_LOCK, {"key": key}).scalar())
        connection.commit()
        try:
            yield held
        finally:
            if held:
                try:
                    connection.execute(_SESSION_UNLOCK, {"key": key})
                    connection.commit()
                except SQLAlchemyError:
                    connection.invalidate()  # closed instead: that lets go of it too


_TRY_SESSION_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
_SESSION_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")


def held(session: Session, key: str) -> bool:
    """Whether a worker holds `key` now (`turn` or `lock_key`), asked without taking it: a
    worker that only looks never keeps another from its turn. Never on SQLite."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    return bool(session.exec(_HELD.bindparams(key=key)).scalar())  # type: ignore[call-overload]


# pg_locks shows a bigint advisory key as its high (classid) and low (objid) 32 bits, for
# every database on the server: only this one's count.
_HELD = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(:key, 0))"
)


def is_deadlock(exc: BaseException) -> bool:
    """PostgreSQL broke a deadlock between two workers by undoing this transaction: the
    work is simply done again (its rows are back as they were)."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == "40P01"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def lease_until(engine: Engine, items: int = 1) -> datetime:
    """When rows taken for work outside a transaction (emails being sent, pages being
    published) are due again if their worker dies first: long enough for `items` of them at
    the slowest a server may answer. On SQLite one pass runs at a time (the run lock), so the
    next pass may take them at once; on PostgreSQL other workers wait."""
    return now() + (timedelta(0) if is_sqlite(engine) else max(LEASE, items * SLOWEST_ITEM))


@contextmanager
def run_lock(lock_path: Path) -> Iterator[bool]:
    """Yield True if this process holds the pass lock, False if another pass is running.

    Scheduled runs can overlap (a slow pass, cron plus a manual run); the lock makes the
    second one step aside instead of racing the first.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
