"""One incoming message -> one decision, recorded with everything it causes, undone as one.

Classify the message as read, then hand it to the conversation it belongs to: the host's
commands, a reader's comment, a job-seeker's withdraw / notify / stop / edit, or the
interview itself (interviews.py). A complete reply is decided in two steps: its number
first, in turn (`process_message`), then its page, cross-overs and reply
(`answer_numbered`). Nothing is sent or published here; the send and publish steps act on
the rows left behind.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlalchemy import bindparam
from sqlmodel import Session, select

from mailflow import comments, conversations, host, interviews
from mailflow.app import App
from mailflow.authresults import sender_authentication
from mailflow.batch_facts import facts_for
from mailflow.classify import Verdict, classify
from mailflow.identity import sender_hash
from mailflow.models import InboundMessage, Interview
from mailflow.parsing import ParsedMail
from mailflow.reading import Reading
from mailflow.replies import reply_to
from mailflow.states import InboundState, join_reasons, transition

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    state: InboundState
    reason: str = ""


def process_message(session: Session, app: App, inbound: InboundMessage, reading: Reading) -> Outcome:
    """Decide what `inbound` (as `reading` read it) is and record it with its effects."""
    mail = reading.mail
    inbound.message_id, inbound.sender_hash = identify(app, mail)
    if _is_duplicate(session, inbound):
        return finish(inbound, InboundState.IGNORED, "duplicate-message-id")
    classification = classify(mail, app.context)
    inbound.rule_hits = json.dumps([hit.__dict__ for hit in classification.hits])
    if classification.verdict is Verdict.AUTOMATIC:
        return finish(inbound, InboundState.IGNORED, classification.reason)
    authentication = sender_authentication(mail, app.settings.core.authserv_id)
    if mail.from_address == app.settings.core.host_address.lower():
        if not host.is_really_the_host(session, app, mail, authentication):
            return finish(inbound, InboundState.FOR_HOST, "host-command-not-authenticated")
        return finish(inbound, *host.handle_host_message(session, app, inbound, mail))
    if authentication == "fail":
        # A forged sender must not make us mail a third party: keep it for the host, say nothing.
        return finish(inbound, InboundState.FOR_HOST, "sender-authentication-failed")
    if classification.verdict is Verdict.TOO_LARGE:
        extra = {"size_kb": mail.size // 1024, "limit_kb": app.context.max_message_bytes // 1024}
        blocked = reply_to(session, app, inbound, mail, "too_large", extra)
        return finish(inbound, InboundState.REJECTED, join_reasons("too-large", blocked))
    for handler in (comments.handle_comment, conversations.handle_command, interviews.handle_edit):
        handled = handler(session, app, inbound, mail)
        if handled is not None:
            return finish(inbound, *handled)
    return finish(inbound, *interviews.handle_interview(session, app, inbound, mail, reading.scrubbed))


def identify(app: App, mail: ParsedMail) -> tuple[str, str]:
    """The message's Message-ID and its sender (hashed), as recorded and looked up by."""
    return mail.message_id[:998], sender_hash(app.secret, mail.from_address) if mail.from_address else ""


def answer_numbered(
    session: Session,
    app: App,
    inbound: InboundMessage,
    interview: Interview,
    reading: Reading,
    older: interviews.OlderPages,
    *,
    withdrawn: bool,
) -> Outcome:
    """The page, cross-overs and reply of a message given its number (interviews.answer_numbered)."""
    if withdrawn:  # by the host, or its author forgotten, between the number and the reply
        return finish(inbound, InboundState.NUMBERED, f"interview-{interview.number:05d}, withdrawn-before-its-reply")
    decision = interviews.answer_numbered(session, app, inbound, interview, reading.mail, reading.answers, older)
    return finish(inbound, *decision)


_ANOTHER_COPY = (
    select(InboundMessage.id)
    .where(
        InboundMessage.message_id == bindparam("message_id"),
        InboundMessage.id != bindparam("inbound_id"),
        InboundMessage.state != InboundState.RECEIVED,
    )
    .limit(1)
)


def _is_duplicate(session: Session, inbound: InboundMessage) -> bool:
    """Another copy of this message was already decided. Workers take turns to decide
    (worker.decide_batch), so of two copies, exactly one counts. (A statement built once and
    run without the ORM: this runs for every message.)"""
    if not inbound.message_id:
        return False
    if (decided := facts_for(session).decided_message_ids) is not None:
        return inbound.message_id in decided
    found = session.connection().execute(_ANOTHER_COPY, {"message_id": inbound.message_id, "inbound_id": inbound.id})
    return found.first() is not None


def finish(inbound: InboundMessage, state: InboundState, reason: str) -> Outcome:
    inbound.reason = reason[:200]
    transition(inbound, state, reason=reason)
    return Outcome(state, reason)
