"""Named states for every row that moves, the transitions allowed between them, and the
one function that changes a state.

States name what is true now (past participles); reasons are kebab-case codes. A claim
on work is a row lock, never an "-ing" state.
"""

from __future__ import annotations

import enum
import logging
from datetime import UTC, datetime
from typing import Protocol

logger = logging.getLogger(__name__)


class InboundState(enum.StrEnum):
    RECEIVED = "received"  # stored raw, not yet decided
    NUMBER_ASSIGNED = "number_assigned"  # a complete reply given its number; page, cross-overs, reply next
    NUMBERED = "numbered"  # a complete reply: has an interview number, its page queued, its reply written
    INCOMPLETE = "incomplete"  # a reply with too few answers: asked for the rest
    QUESTIONNAIRE_SENT = "questionnaire_sent"  # a person wrote: sent the questions
    FOR_HOST = "for_host"  # from a person, kept for the host, no automatic reply
    ACTED_ON = "acted_on"  # a request carried out: an edit, withdraw, comment, host command
    REJECTED = "rejected"  # refused (too large...); the sender was told why
    IGNORED = "ignored"  # automatic mail, duplicates: never answered
    FAILED = "failed"  # something unexpected; the raw message is kept


# Not final yet: the mailbox copy is not filed and the raw message is kept.
IN_PROGRESS = (InboundState.RECEIVED, InboundState.NUMBER_ASSIGNED)


class FilingState(enum.StrEnum):
    """Whether the mailbox copy has been moved or marked after its row was stored."""

    WAITING = "waiting"
    FILED = "filed"


class OutboxState(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class PublicationState(enum.StrEnum):
    AWAITING_REVIEW = "awaiting_review"  # review is on: waits for the host to approve
    QUEUED = "queued"  # to be published (or updated: an edit, new related links, a comment)
    PUBLISHED = "published"
    WITHDRAWAL_QUEUED = "withdrawal_queued"  # to be taken down
    WITHDRAWN = "withdrawn"
    REJECTED = "rejected"  # the host said no; never published
    FAILED = "failed"


class CommentState(enum.StrEnum):
    AWAITING_REVIEW = "awaiting_review"
    APPROVED = "approved"
    REJECTED = "rejected"


ALLOWED: dict[type[enum.StrEnum], dict[str, set[str]]] = {
    InboundState: {
        InboundState.RECEIVED: {
            InboundState.NUMBER_ASSIGNED,
            InboundState.INCOMPLETE,
            InboundState.QUESTIONNAIRE_SENT,
            InboundState.FOR_HOST,
            InboundState.ACTED_ON,
            InboundState.REJECTED,
            InboundState.IGNORED,
            InboundState.FAILED,
        },
        InboundState.NUMBER_ASSIGNED: {InboundState.NUMBERED, InboundState.FAILED},
        # The host may ask for a failed message to be tried again (from where it failed).
        InboundState.FAILED: {InboundState.RECEIVED, InboundState.NUMBER_ASSIGNED},
    },
    FilingState: {FilingState.WAITING: {FilingState.FILED}},
    OutboxState: {
        OutboxState.QUEUED: {OutboxState.SENT, OutboxState.FAILED},
        OutboxState.FAILED: {OutboxState.QUEUED},
    },
    PublicationState: {
        PublicationState.AWAITING_REVIEW: {
            PublicationState.QUEUED,
            PublicationState.REJECTED,
            PublicationState.WITHDRAWN,
        },
        PublicationState.QUEUED: {
            PublicationState.PUBLISHED,
            PublicationState.FAILED,
            PublicationState.WITHDRAWAL_QUEUED,
            PublicationState.WITHDRAWN,
        },
        PublicationState.PUBLISHED: {PublicationState.QUEUED, PublicationState.WITHDRAWAL_QUEUED},
        PublicationState.WITHDRAWAL_QUEUED: {PublicationState.WITHDRAWN, PublicationState.FAILED},
        PublicationState.FAILED: {
            PublicationState.QUEUED,
            PublicationState.WITHDRAWAL_QUEUED,
            PublicationState.WITHDRAWN,
        },
        PublicationState.WITHDRAWN: {PublicationState.WITHDRAWAL_QUEUED},  # it went up while being withdrawn
        PublicationState.REJECTED: set(),
    },
    CommentState: {
        CommentState.AWAITING_REVIEW: {CommentState.APPROVED, CommentState.REJECTED},
        CommentState.APPROVED: {CommentState.REJECTED},
    },
}


class InvalidTransition(RuntimeError):
    """A programming error: code tried a move the table above does not allow."""


class HasState(Protocol):
    id: int | None
    state: str
    updated_at: datetime


def transition(row: HasState, new: enum.StrEnum, *, field: str = "state", reason: str = "") -> None:
    """Move `row` to `new` if the table allows it; stamp the time and log one line: at INFO
    where a row ends up or waits, at DEBUG a message's passing state (a host reading the
    log of a 2,000-message backlog wants a line per outcome, not per step)."""
    current = getattr(row, field)
    allowed = ALLOWED[type(new)].get(current, set())
    if new not in allowed:
        raise InvalidTransition(f"{type(row).__name__} {row.id}: {current} -> {new} is not allowed")
    setattr(row, field, new.value)
    row.updated_at = now()
    if field == "state":
        level = logging.DEBUG if new in IN_PROGRESS else logging.INFO
        logger.log(level, "%s %s: %s%s", type(row).__name__, row.id, new.value, f" ({reason})" if reason else "")


def now() -> datetime:
    """Aware UTC: sqlmodel refuses naive datetimes, and UTC keeps SQLite and PostgreSQL alike."""
    return datetime.now(UTC)


Decision = tuple[InboundState, str]
"""What a handler decided for an incoming message: its final state and the reason."""


def join_reasons(*reasons: str) -> str:
    """ "interview-00007, reply-limit": the reasons that apply, in order, empty ones left out."""
    return ", ".join(reason for reason in reasons if reason)
