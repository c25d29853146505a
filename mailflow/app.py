"""Composition root: settings -> database, backends, templates and questions, wired once.

No module keeps global state; everything a pass needs travels in the App.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from mailflow.classify import Context
from mailflow.config import Settings, resolve_path
from mailflow.crossovers import CrossoverIndex
from mailflow.db import is_sqlite, lock_key, make_engine, sqlite_path
from mailflow.identity import load_or_create_secret
from mailflow.migrate import upgrade
from mailflow.outbox import Outbox, make_outbox
from mailflow.pages import SiteInfo
from mailflow.publishers import Publisher, PublisherEnv, make_publisher
from mailflow.questions import load_questions
from mailflow.render import Renderer, default_templates_dir
from mailflow.sources import Source, make_source


@dataclass
class App:
    settings: Settings
    engine: Engine
    source: Source
    outbox: Outbox
    publisher: Publisher
    renderer: Renderer
    questions: tuple[str, ...]
    boilerplate: tuple[str, ...]
    secret: bytes
    site: SiteInfo
    context: Context
    _crossovers: CrossoverIndex | None = None
    _crossovers_checked: bool = False
    _crossover_turn: object | None = None  # the transaction that holds the turn on the cross-overs
    follow_up: bool = True  # [blog] follow_up: tell the author the page's address once it is known
    listing_stale: bool = False  # the last index/feed refresh failed: retry it next pass

    def crossovers(self, session: Session) -> CrossoverIndex:
        """The cross-over index: built on first use and kept up to date by this process as it
        numbers. On SQLite it looks at the database again once per `recheck` (a pass); on
        PostgreSQL once per transaction, after taking the turn on the cross-overs (whole,
        unless this transaction took it shared already: `take_crossover_turn`)."""
        self.take_crossover_turn(session)
        if self._crossovers is not None and not self._crossovers_checked:
            if not self._crossovers.catch_up(session):
                self._crossovers = None
        if self._crossovers is None:
            self._crossovers = CrossoverIndex.from_database(session)
        self._crossovers_checked = True
        return self._crossovers

    def take_crossover_turn(self, session: Session, *, shared: bool = False) -> None:
        """On PostgreSQL, workers answering numbered replies take turns, so that a new
        interview's cross-overs are found among all those answered before it, as do the
        host's commands that change pages or links: a transaction that does takes this turn
        (once; it lasts until the transaction ends) before it touches a page, and then sees
        what the others committed. Relinking older pages takes it `shared`: relinks run side
        by side (each on the rows it locks, in order of number), never beside a transaction
        that holds the whole turn. On SQLite one transaction writes at a time anyway."""
        transaction = session.get_transaction()
        if not is_sqlite(self.engine) and self._crossover_turn is not transaction:
            lock_key(session, "mailflow-crossovers", shared=shared)
            self._crossover_turn, self._crossovers_checked = transaction, False

    def recheck_crossovers(self) -> None:
        """Other processes (workers, the host's commands) may have changed interviews since:
        look at the database again when the index is next used."""
        self._crossovers_checked = False

    def reload_templates(self) -> None:
        """The templates afresh (the host may have edited one since the last pass), and with
        them the questionnaire's own lines, which reading leaves out of the answers."""
        self.renderer.reload()
        self.boilerplate = tuple(self.renderer.email("questionnaire", **self.email_context()).text.splitlines())

    def forget_crossovers(self) -> None:
        """Drop the index (a rolled-back transaction may have added to it); rebuilt when next needed."""
        self._crossovers, self._crossover_turn = None, None

    @property
    def min_answers(self) -> int:
        return max(1, math.ceil(self.settings.core.complete_ratio * len(self.questions)))

    @property
    def lock_path(self) -> Path:
        database = sqlite_path(self.settings.core.database, self.settings.base_dir)
        return (database.parent if database else self.settings.base_dir / "var") / "mailflow.lock"

    @property
    def workers_path(self) -> Path:
        """Where the workers of this installation on this machine hold their slots (neighbours.py)."""
        return self.lock_path.with_name("workers")

    def email_context(self) -> dict[str, object]:
        """What every email template may use."""
        return {
            "site_name": self.site.name,
            "from_name": self.settings.core.from_name,
            "questions": self.questions,
            "min_answers": self.min_answers,
            "review": self.settings.core.review,
            "interview_address": self.settings.core.from_address,
        }

    def close(self) -> None:
        self.source.close()
        self.outbox.close()
        self.engine.dispose()


def build_app(settings: Settings, *, migrate: bool = True) -> App:
    core = settings.core
    templates = settings.sections["mailflow"].optional("templates")
    renderer = Renderer(resolve_path(settings.base_dir, templates) if templates else default_templates_dir())
    base_url = settings.blog.text("base_url", "http://localhost:8000/")
    site = SiteInfo(
        name=core.site_name,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        language=settings.blog.text("language", "en"),
        interview_address=core.from_address,
    )
    engine = make_engine(core.database, settings.base_dir, core.database_timeout)
    if migrate:
        upgrade(engine)
    questions = load_questions(settings.interview.questions_file)
    app = App(
        settings=settings,
        engine=engine,
        source=make_source(settings.incoming),
        outbox=make_outbox(settings.outgoing, settings.incoming),
        publisher=make_publisher(settings.blog, PublisherEnv(renderer, site)),
        renderer=renderer,
        questions=questions,
        boilerplate=(),
        secret=load_or_create_secret(core.secret_file),
        site=site,
        context=Context(
            own_addresses=frozenset({core.from_address.lower()}),
            max_message_bytes=core.max_message_bytes,
        ),
    )
    app.follow_up = settings.blog.flag("follow_up", True)
    if hasattr(app.source, "known_ids"):  # IMAP re-scans after a UIDVALIDITY change go by Message-ID
        app.source.known_ids = lambda message_ids, current: _stored_message_ids(engine, message_ids, current)
    app.reload_templates()
    return app


def _stored_message_ids(engine: Engine, message_ids: set[str], current: str) -> set[str]:
    """Which of these Message-IDs are stored already under a source key not starting with
    `current`: one query per batch of messages. (Messages are stored, and given their
    Message-ID as they are decided, while a re-scan goes on: one delivered twice into the
    folder being re-scanned must not pass for the first.)"""
    from sqlalchemy import not_
    from sqlmodel import col, select

    from mailflow.models import InboundMessage

    if not message_ids:
        return set()
    with Session(engine) as session:
        query = select(InboundMessage.message_id).where(
            InboundMessage.message_id.in_(message_ids),  # type: ignore[attr-defined]
            not_(col(InboundMessage.source_key).startswith(current, autoescape=True)),
        )
        return set(session.exec(query).all())
