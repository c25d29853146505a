"""Schema migrations with Alembic: every start brings the database up to the current schema.

The migration scripts live in db/migrations (installed under share/mailflow/migrations).
A database made by an earlier release is upgraded in place; a new one is created by
running every migration from the first.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from mailflow.errors import ConfigError

logger = logging.getLogger(__name__)

MIGRATION_LOCK = 7_356_001  # an arbitrary advisory-lock key of mailflow's own


def migrations_dir() -> Path:
    for candidate in (
        Path(__file__).resolve().parent.parent / "db" / "migrations",
        Path(sys.prefix) / "share" / "mailflow" / "migrations",
    ):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigError("mailflow's database migrations are missing; reinstall mailflow.")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it already is)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Workers starting together take turns; SQLite's BEGIN IMMEDIATE does the same there.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def make_revision(engine: Engine, message: str) -> None:
    """For developers: write a new migration from the difference between models and database."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)
