"""The host's digest: what happened since the last one, by email, on a schedule.

It never ties an interview to the address that sent it: interviews appear by number
only; senders are shown only for messages meant for the host (questions, suggestions).
Nothing new means no digest, unless the host asks for one anyway.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, select

from mailflow.answers import own_text
from mailflow.app import App
from mailflow.db import transaction
from mailflow.models import Comment, DigestRun, InboundMessage, Interview, OutboxItem, Publication
from mailflow.numbering import current_count
from mailflow.pages import excerpt_of
from mailflow.parsing import ParsedMail, parse_message
from mailflow.render import format_number
from mailflow.replies import queue_email
from mailflow.states import CommentState, InboundState, OutboxState, PublicationState, now

logger = logging.getLogger(__name__)

EXCERPT = 160


@dataclass
class DigestContent:
    since: datetime | None
    total: int = 0
    new_interviews: list[dict[str, str]] = field(default_factory=list)
    awaiting_review: list[dict[str, str]] = field(default_factory=list)
    comments_awaiting: list[dict[str, str]] = field(default_factory=list)
    incomplete: int = 0
    for_host: list[dict[str, str]] = field(default_factory=list)
    failing_mail: list[dict[str, str]] = field(default_factory=list)
    failing_posts: list[dict[str, str]] = field(default_factory=list)
    failed_messages: list[dict[str, str]] = field(default_factory=list)

    def has_news(self) -> bool:
        return any(
            (self.new_interviews, self.awaiting_review, self.comments_awaiting, self.incomplete,
             self.for_host, self.failing_mail, self.failing_posts, self.failed_messages)
        )  # fmt: skip


def last_digest(session: Session) -> datetime | None:
    run = session.exec(select(DigestRun).order_by(DigestRun.sent_at.desc())).first()  # type: ignore[attr-defined]
    return run.sent_at if run else None


def collect(session: Session, app: App, since: datetime | None) -> DigestContent:
    start = since or datetime(1970, 1, 1, tzinfo=now().tzinfo)
    content = DigestContent(since=since, total=current_count(session))
    interviews = session.exec(
        select(Interview, Publication).join(Publication).where(Interview.updated_at >= start).order_by(Interview.number)  # type: ignore[arg-type]
    ).all()
    for interview, publication in interviews:
        entry = {"number": format_number(interview.number), "excerpt": excerpt_of(interview.answers_json)[:EXCERPT],
                 "url": publication.url or app.publisher.permalink(interview.number)}  # fmt: skip
        if publication.state == PublicationState.AWAITING_REVIEW:
            content.awaiting_review.append(entry)
        elif interview.answers_json != "[]":
            content.new_interviews.append(entry)
    for comment in session.exec(select(Comment).where(Comment.state == CommentState.AWAITING_REVIEW)).all():
        content.comments_awaiting.append({"id": str(comment.id), "body": comment.body[:EXCERPT]})
    received = select(InboundMessage).where(InboundMessage.arrived_at >= start)
    content.incomplete = len(session.exec(received.where(InboundMessage.state == InboundState.INCOMPLETE)).all())
    host_states = (InboundState.FOR_HOST, InboundState.QUESTIONNAIRE_SENT)
    owners = set(session.exec(select(Interview.sender_hash).where(Interview.sender_hash != "")).all())
    for message in session.exec(received.where(InboundMessage.state.in_(host_states))).all():  # type: ignore[attr-defined]
        mail = parse_message(message.raw) if message.raw else None
        if mail is None:
            continue
        content.for_host.append(_for_host_entry(mail, message, is_interviewee=message.sender_hash in owners))
    for item in session.exec(
        select(OutboxItem).where(OutboxItem.state == OutboxState.FAILED, OutboxItem.updated_at >= start)
    ).all():
        content.failing_mail.append({"kind": item.kind, "error": item.last_error[:200]})
    for item in session.exec(
        select(OutboxItem).where(OutboxItem.state == OutboxState.QUEUED, OutboxItem.attempts >= 3)
    ).all():
        content.failing_mail.append({"kind": item.kind, "error": f"still trying: {item.last_error[:180]}"})
    for message in session.exec(received.where(InboundMessage.state == InboundState.FAILED)).all():
        content.failed_messages.append({"id": str(message.id), "reason": message.reason})
    failing = select(Interview, Publication).join(Publication).where(Publication.attempts >= 3)  # type: ignore[arg-type]
    for interview, publication in session.exec(failing).all():
        if publication.state in (PublicationState.FAILED, PublicationState.QUEUED):
            content.failing_posts.append(
                {"number": format_number(interview.number), "error": publication.last_error[:200]}
            )
    return content


_NUMBERS = re.compile(r"#?\b\d{5}\b")


def _for_host_entry(mail: ParsedMail, message: InboundMessage, *, is_interviewee: bool) -> dict[str, str]:
    """A message for the host. The sender is shown, except for someone who has an interview:
    their address next to anything they wrote could tie them to their number."""
    subject, text = mail.subject[:120], own_text(mail)[:400]
    if is_interviewee:
        return {"sender": "an interviewee (address withheld)", "subject": _NUMBERS.sub("#…", subject),
                "text": _NUMBERS.sub("#…", text), "reason": message.reason}  # fmt: skip
    return {"sender": mail.from_address, "subject": subject, "text": text, "reason": message.reason}


def send_digest(app: App, *, force: bool = False) -> DigestContent | None:
    """Queue a digest to the host if there is news (or `force`); it goes out with the next send step."""
    with transaction(app.engine) as session:
        content = collect(session, app, last_digest(session))
        if not content.has_news() and not force:
            return None
        rendered = app.renderer.email("digest", **app.email_context(), digest=content)
        item_id = queue_email(
            session, kind="digest", rendered=rendered, from_name=app.settings.core.from_name,
            from_address=app.settings.core.from_address, recipient=app.settings.core.host_address,
            sender_hash="", inbound_id=None, answering=None,
        )  # fmt: skip
        session.add(DigestRun(outbox_id=item_id))
    logger.info("digest queued for the host")
    return content


def _latest_slot(app: App, moment: datetime) -> datetime:
    """The most recent scheduled digest time at or before `moment`."""
    core = app.settings.core
    hours, minutes = (int(part) for part in core.digest_time.split(":"))
    slot = moment.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    if moment < slot:
        slot -= timedelta(days=1)
    if core.digest == "weekly":
        weekday = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday").index(
            core.digest_weekday
        )
        slot -= timedelta(days=(slot.weekday() - weekday) % 7)
    return slot


def is_digest_due(app: App, moment: datetime) -> bool:
    """Daily (or weekly) at the host's time: due once the time has passed and none went out since."""
    if app.settings.core.digest == "off":
        return False
    with transaction(app.engine) as session:
        last = last_digest(session)
    return last is None or last < _latest_slot(app, moment)


def next_digest_at(app: App, moment: datetime) -> datetime | None:
    if app.settings.core.digest == "off":
        return None
    if is_digest_due(app, moment):
        return moment
    step = timedelta(days=7 if app.settings.core.digest == "weekly" else 1)
    return _latest_slot(app, moment) + step
