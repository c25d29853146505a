"""Keeping people's data only as long as it is needed, and forgetting a person on request.

After `retention_days` the raw messages (which hold addresses, names and signatures) and
the addresses of sent mail are erased; the rows stay, with their states and reasons, so
the history of what happened remains. `forget` does the same at once for one person, and
takes their interview down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from mailflow.app import App
from mailflow.conversations import take_down
from mailflow.db import transaction
from mailflow.identity import sender_hash
from mailflow.models import Comment, Draft, InboundMessage, Interview, OutboxItem
from mailflow.states import IN_PROGRESS, OutboxState, now, transition

logger = logging.getLogger(__name__)


def purge_expired(app: App) -> None:
    """Erase raw messages and addresses older than the retention period."""
    cutoff = now() - timedelta(days=app.settings.core.retention_days)
    with transaction(app.engine) as session:
        session.exec(
            update(InboundMessage)
            .where(InboundMessage.arrived_at < cutoff, InboundMessage.state.not_in(IN_PROGRESS))  # type: ignore[arg-type,attr-defined]
            .where(InboundMessage.raw != b"")  # type: ignore[arg-type]
            .values(raw=b"")
        )
        session.exec(
            update(OutboxItem)
            .where(OutboxItem.created_at < cutoff, OutboxItem.state != OutboxState.QUEUED)  # type: ignore[arg-type]
            .where(OutboxItem.recipient != "")  # type: ignore[arg-type]
            .values(raw=b"", recipient="")
        )
        for draft in session.exec(select(Draft).where(Draft.updated_at < cutoff)).all():
            session.delete(draft)


@dataclass(frozen=True)
class ForgetReport:
    interviews: list[int]
    messages: int
    emails: int


def forget(app: App, address: str, *, keep_interviews: bool = False) -> ForgetReport:
    """Remove what we hold about the person writing from `address` (see module docstring)."""
    hashed = sender_hash(app.secret, address)
    with transaction(app.engine) as session:
        app.take_crossover_turn(session)  # pages may come down: before touching any (see App)
        numbers = _forget_in(session, app, hashed, keep_interviews)
        messages = session.exec(
            update(InboundMessage).where(InboundMessage.sender_hash == hashed).values(raw=b"", sender_hash="")  # type: ignore[arg-type]
        ).rowcount
        emails = session.exec(
            update(OutboxItem)
            .where(OutboxItem.sender_hash == hashed, OutboxItem.state != OutboxState.QUEUED)  # type: ignore[arg-type]
            .values(raw=b"", recipient="", sender_hash="")
        ).rowcount
        for item in session.exec(select(OutboxItem).where(OutboxItem.sender_hash == hashed)).all():
            if item.state == OutboxState.QUEUED:
                transition(item, OutboxState.FAILED, reason="forgotten on request before it was sent")
            item.last_error, item.raw, item.recipient, item.sender_hash = "forgotten on request", b"", "", ""
    logger.info("forgot a sender: %d interviews, %d messages, %d emails", len(numbers), messages, emails)
    return ForgetReport(numbers, messages or 0, emails or 0)


def _forget_in(session: Session, app: App, hashed: str, keep_interviews: bool) -> list[int]:
    draft = session.get(Draft, hashed)
    if draft is not None:
        session.delete(draft)
    for comment in session.exec(select(Comment).where(Comment.sender_hash == hashed)).all():
        comment.sender_hash = ""
    numbers = []
    for interview in session.exec(select(Interview).where(Interview.sender_hash == hashed)).all():
        numbers.append(interview.number)
        if keep_interviews:
            interview.sender_hash = ""
        else:
            take_down(session, app, interview)
    return numbers
