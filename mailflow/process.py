"""One incoming message -> one decision, recorded in one transaction with everything it causes.

Parse, classify, read the answers, and then exactly one of: number it (interview,
publication and reply rows), ask for the missing answers, send the questionnaire, keep
it for the host, refuse it politely, or ignore it with its reasons. Nothing is sent
or published here; send and publish steps act on the rows afterwards.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlmodel import Session, select

from mailflow.answers import extract_answers
from mailflow.app import App
from mailflow.classify import Verdict, classify
from mailflow.identity import sender_hash
from mailflow.models import Draft, InboundMessage, Interview, Publication
from mailflow.numbering import allocate_number
from mailflow.pages import answers_to_json
from mailflow.parsing import ParsedMail, parse_message
from mailflow.replies import (
    is_replyable_address,
    last_sent_kind_within,
    queue_email,
    replies_today,
)
from mailflow.scrub import scrub_answer
from mailflow.states import InboundState, transition

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    state: InboundState
    reason: str = ""


def process_message(session: Session, app: App, inbound: InboundMessage) -> Outcome:
    """Decide what `inbound` is and record it with its effects (see module docstring)."""
    mail = parse_message(inbound.raw)
    inbound.message_id = mail.message_id[:998]
    inbound.sender_hash = sender_hash(app.secret, mail.from_address) if mail.from_address else ""
    if _is_duplicate(session, inbound):
        return _finish(inbound, InboundState.IGNORED, "duplicate-message-id")
    classification = classify(mail, app.context)
    inbound.rule_hits = json.dumps([hit.__dict__ for hit in classification.hits])
    if classification.verdict is Verdict.AUTOMATIC:
        return _finish(inbound, InboundState.IGNORED, classification.reason)
    if classification.verdict is Verdict.TOO_LARGE:
        context = {"size_kb": mail.size // 1024, "limit_kb": app.context.max_message_bytes // 1024}
        blocked = _reply(session, app, inbound, mail, "too_large", context)
        return _finish(inbound, InboundState.REJECTED, _join("too-large", blocked))
    answers = extract_answers(mail, app.questions, app.boilerplate)
    found = {n: scrub_answer(text, [mail.from_name]) for n, text in answers.found.items()}
    draft = session.get(Draft, inbound.sender_hash)
    if found and draft is not None:
        found = {**{int(n): a for n, a in json.loads(draft.answers_json).items()}, **found}
    if len(found) >= app.min_answers:
        return _number(session, app, inbound, mail, found, draft)
    if found:
        return _ask_for_missing(session, app, inbound, mail, found, draft)
    if last_sent_kind_within(session, inbound.sender_hash, "questionnaire", app.settings.core.questionnaire_interval_hours):
        return _finish(inbound, InboundState.FOR_HOST, "questionnaire-sent-recently")
    blocked = _reply(session, app, inbound, mail, "questionnaire", {})
    if blocked:
        return _finish(inbound, InboundState.FOR_HOST, blocked)
    return _finish(inbound, InboundState.QUESTIONNAIRE_SENT, "no-answers")


def _number(
    session: Session, app: App, inbound: InboundMessage, mail: ParsedMail, found: dict[int, str], draft: Draft | None
) -> Outcome:
    number = allocate_number(session)
    interview = Interview(
        number=number,
        inbound_id=inbound.id or 0,
        sender_hash=inbound.sender_hash,
        answers_json=answers_to_json(app.questions, found),
        submitted_on=inbound.arrived_at.date(),
    )
    session.add(interview)
    session.flush()
    session.add(Publication(interview_id=interview.id or 0, url=app.publisher.permalink(number)))
    if draft is not None:
        session.delete(draft)
    context = {"number": number, "page_url": app.publisher.permalink(number) or app.site.base_url}
    blocked = _reply(session, app, inbound, mail, "numbered", context)
    logger.info("message %s: interview %05d", inbound.id, number)
    return _finish(inbound, InboundState.NUMBERED, _join(f"interview-{number:05d}", blocked))


def _ask_for_missing(
    session: Session, app: App, inbound: InboundMessage, mail: ParsedMail, found: dict[int, str], draft: Draft | None
) -> Outcome:
    payload = json.dumps({str(n): a for n, a in found.items()}, ensure_ascii=False)
    if draft is None:
        session.add(Draft(sender_hash=inbound.sender_hash, answers_json=payload))
    else:
        draft.answers_json = payload
    missing = [(n, q) for n, q in enumerate(app.questions, start=1) if n not in found]
    blocked = _reply(session, app, inbound, mail, "incomplete", {"missing": missing, "answered": len(found)})
    return _finish(inbound, InboundState.INCOMPLETE, _join("below-threshold", blocked))


def _reply(
    session: Session, app: App, inbound: InboundMessage, mail: ParsedMail, kind: str, extra: dict[str, object]
) -> str:
    """Queue a reply to the sender; return '' or the reason it was not queued."""
    if not is_replyable_address(mail.from_address):
        return "unreplyable-address"
    if replies_today(session, inbound.sender_hash) >= app.settings.core.max_replies_per_day:
        return "reply-limit"
    rendered = app.renderer.email(kind, **app.email_context(), **extra)
    queue_email(
        session,
        kind=kind,
        rendered=rendered,
        from_name=app.settings.core.from_name,
        from_address=app.settings.core.from_address,
        recipient=mail.from_address,
        sender_hash=inbound.sender_hash,
        inbound_id=inbound.id,
        answering=mail,
    )
    return ""


def _is_duplicate(session: Session, inbound: InboundMessage) -> bool:
    if not inbound.message_id:
        return False
    earlier = select(InboundMessage.id).where(
        InboundMessage.message_id == inbound.message_id,
        InboundMessage.id != inbound.id,
        InboundMessage.id < (inbound.id or 0),
    )
    return session.exec(earlier.limit(1)).first() is not None


def _join(*reasons: str) -> str:
    return ", ".join(reason for reason in reasons if reason)


def _finish(inbound: InboundMessage, state: InboundState, reason: str) -> Outcome:
    inbound.reason = reason[:200]
    transition(inbound, state, reason=reason)
    return Outcome(state, reason)

