"""What deciding or answering a message asks the database about its sender and its
Message-ID, asked once for a whole batch. Each question is a round trip (on PostgreSQL
most of a message's deciding time), and workers take turns to decide: a batch asks five
questions instead of four per message.

The answers hold for a message only while nothing the batch wrote before it could change
them, which the worker knows (worker.SeenInBatch): it hands them on (`known`) for a
message whose sender and Message-ID did not come earlier in the batch, in a batch run as
one unit, before any message from the host (whose commands reach other people's rows).
Otherwise each lookup asks the database, as it always may.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from mailflow.models import Draft, InboundMessage, Interview, OutboxItem
from mailflow.states import InboundState, now

_KEY = "mailflow-batch-facts"


@dataclass
class BatchFacts:
    """What was asked; a question not asked (None) goes to the database as usual."""

    decided_message_ids: set[str] | None = None  # of messages decided before the batch
    drafts: set[str] | None = None  # senders (hashed) with a draft
    interviews: dict[str, dict[str, int]] | None = None  # sender -> answers_json -> number
    confirmations: dict[str, dict[str, int]] | None = None  # sender -> reply's Message-ID -> interview
    replies_since: dict[str, int] | None = None  # sender -> emails to them in the last day

    @classmethod
    def for_deciding(cls, session: Session, message_ids: Iterable[str], senders: Iterable[str]) -> BatchFacts:
        message_ids, senders = {m for m in message_ids if m}, {s for s in senders if s}
        connection = session.connection()  # no flush: the batch has written nothing yet
        decided = set(
            connection.execute(
                select(InboundMessage.message_id).where(
                    InboundMessage.message_id.in_(message_ids),  # type: ignore[attr-defined]
                    InboundMessage.state != InboundState.RECEIVED,
                )
            ).scalars()
        )
        drafts = set(connection.execute(select(Draft.sender_hash).where(Draft.sender_hash.in_(senders))).scalars())  # type: ignore[attr-defined]
        interviews: dict[str, dict[str, int]] = {}
        for sender, answers_json, number in connection.execute(
            select(Interview.sender_hash, Interview.answers_json, Interview.number).where(
                Interview.sender_hash.in_(senders)  # type: ignore[attr-defined]
            )
        ):
            interviews.setdefault(sender, {}).setdefault(answers_json, number)
        confirmations: dict[str, dict[str, int]] = {}
        for sender, message_id, interview_id in connection.execute(
            select(Interview.sender_hash, OutboxItem.message_id, Interview.id)
            .join(OutboxItem, OutboxItem.inbound_id == Interview.inbound_id)  # type: ignore[arg-type]
            .where(OutboxItem.kind == "numbered", Interview.sender_hash.in_(senders))  # type: ignore[attr-defined]
        ):
            confirmations.setdefault(sender, {})[message_id] = interview_id
        return cls(decided, drafts, interviews, confirmations)

    @classmethod
    def for_answering(cls, session: Session, senders: Iterable[str]) -> BatchFacts:
        since = now() - timedelta(days=1)
        rows = session.connection().execute(
            select(OutboxItem.sender_hash, func.count())
            .where(OutboxItem.sender_hash.in_({s for s in senders if s}), OutboxItem.created_at >= since)  # type: ignore[attr-defined, arg-type]
            .group_by(OutboxItem.sender_hash)
        )
        return cls(replies_since={sender: count for sender, count in rows})


def facts_for(session: Session) -> BatchFacts:
    """The batch's answers, as far as they hold for the message being decided or answered now."""
    found: BatchFacts | None = session.info.get(_KEY)
    return found or _NOTHING_ASKED


_NOTHING_ASKED = BatchFacts()


@contextmanager
def known(session: Session, facts: BatchFacts | None) -> Iterator[None]:
    """While the block runs, lookups take their answers from `facts` (None: from the database)."""
    session.info[_KEY] = facts
    try:
        yield
    finally:
        session.info.pop(_KEY, None)
