"""The database tables: every incoming message and every effect it causes is a row with a state.

Table models stay in the database layer; templates receive page models built from them
(see pages.py), never these rows.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, LargeBinary, Text
from sqlmodel import Field, SQLModel

from mailflow.states import CommentState, FilingState, InboundState, OutboxState, PublicationState, now


class InboundMessage(SQLModel, table=True):
    """One message as it arrived, kept raw, with what was decided about it and why."""

    __tablename__ = "inbound_message"

    id: int | None = Field(default=None, primary_key=True)
    source_key: str = Field(unique=True, index=True, max_length=512)
    message_id: str = Field(default="", index=True, max_length=998)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int = 0
    arrived_at: datetime = Field(default_factory=now)
    state: str = Field(default=InboundState.RECEIVED.value, index=True, max_length=32)
    reason: str = Field(default="", max_length=200)
    rule_hits: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    sender_hash: str = Field(default="", index=True, max_length=64)
    filing: str = Field(default=FilingState.WAITING.value, index=True, max_length=16)
    # Unused since the first release. Kept: dropping a column in place needs SQLite 3.35 (Debian
    # 11 has 3.34) and rebuilding this table trips the foreign keys that point at it.
    attempts: int = 0
    updated_at: datetime = Field(default_factory=now)


class Interview(SQLModel, table=True):
    """A numbered interview: the scrubbed answers only, never who sent them."""

    id: int | None = Field(default=None, primary_key=True)
    number: int = Field(unique=True, index=True)
    inbound_id: int = Field(foreign_key="inbound_message.id", unique=True)
    sender_hash: str = Field(index=True, max_length=64)
    answers_json: str = Field(sa_column=Column(Text, nullable=False))
    related_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    submitted_on: date
    updated_at: datetime = Field(default_factory=now)


class CrossLink(SQLModel, table=True):
    """A cross-over the host added or removed by hand; it wins over the automatic ones."""

    __tablename__ = "cross_link"

    id: int | None = Field(default=None, primary_key=True)
    from_number: int = Field(index=True)
    to_number: int = Field(index=True)
    kind: str = Field(max_length=16)  # "added" or "removed"


class Comment(SQLModel, table=True):
    """A reader's comment that arrived by email, signed as its author chose."""

    id: int | None = Field(default=None, primary_key=True)
    interview_id: int = Field(foreign_key="interview.id", index=True)
    inbound_id: int = Field(foreign_key="inbound_message.id", unique=True)
    body: str = Field(sa_column=Column(Text, nullable=False))
    signature: str = Field(default="", max_length=80)
    verified_number: int | None = None
    sender_hash: str = Field(default="", index=True, max_length=64)
    state: str = Field(default=CommentState.APPROVED.value, index=True, max_length=16)
    created_on: date
    updated_at: datetime = Field(default_factory=now)
    # Where the blog keeps it (a WordPress comment id), or "in-page" when the page shows it;
    # with bounded retries of its own (see publishing.py).
    remote_id: str = Field(default="", max_length=255)
    attempts: int = 0
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    next_attempt_at: datetime = Field(default_factory=now)


class Subscription(SQLModel, table=True):
    """A job-seeker who asked to hear about new cross-overs; the address is kept only while they do."""

    id: int | None = Field(default=None, primary_key=True)
    interview_id: int = Field(foreign_key="interview.id", unique=True)
    address: str = Field(max_length=320)
    pending_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    last_notified_at: datetime | None = None
    updated_at: datetime = Field(default_factory=now)


class DigestRun(SQLModel, table=True):
    """When the host last got a digest: the next one covers what happened since."""

    __tablename__ = "digest_run"

    id: int | None = Field(default=None, primary_key=True)
    sent_at: datetime = Field(default_factory=now, index=True)
    outbox_id: int | None = None


class PendingLinks(SQLModel, table=True):
    """A new interview whose older related pages have not yet been given a link to it. Their
    links are refreshed once a pass, not once a batch (worker.relink_older_pages): in a
    backlog the same older pages are related to batch after batch. A row, so that a pass
    that stops first leaves the work for the next."""

    __tablename__ = "pending_links"

    number: int = Field(primary_key=True)


class Counter(SQLModel, table=True):
    """The gapless interview counter; its row is locked while a number is allocated."""

    name: str = Field(primary_key=True, max_length=32)
    value: int = 0


class OutboxItem(SQLModel, table=True):
    """An email we owe someone, rendered once with its final Message-ID, sent afterwards."""

    __tablename__ = "outbox_item"

    id: int | None = Field(default=None, primary_key=True)
    inbound_id: int | None = Field(default=None, foreign_key="inbound_message.id", index=True)
    kind: str = Field(max_length=32)
    sender_hash: str = Field(default="", index=True, max_length=64)
    recipient: str = Field(max_length=320)
    message_id: str = Field(unique=True, max_length=255)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = Field(default=OutboxState.QUEUED.value, index=True, max_length=16)
    attempts: int = 0
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    next_attempt_at: datetime = Field(default_factory=now)
    created_at: datetime = Field(default_factory=now, index=True)
    updated_at: datetime = Field(default_factory=now)


class Publication(SQLModel, table=True):
    """An interview's page on the blog: where it lives and whether it is up to date."""

    id: int | None = Field(default=None, primary_key=True)
    interview_id: int = Field(foreign_key="interview.id", unique=True)
    state: str = Field(default=PublicationState.QUEUED.value, index=True, max_length=32)
    remote_id: str = Field(default="", max_length=255)
    url: str = Field(default="", max_length=2048)
    attempts: int = 0
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    next_attempt_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now, index=True)  # changed since? (crossovers.catch_up)


class Draft(SQLModel, table=True):
    """Scrubbed answers from an incomplete reply, so the next reply only has to add the rest."""

    sender_hash: str = Field(primary_key=True, max_length=64)
    answers_json: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=now)
