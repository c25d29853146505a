"""A job-seeker's one-word requests by email: withdraw, notify me, stop.

Ownership is proven by writing from the same address: the keyed hash of the sender must
match the interview's, so no stored address is needed and nobody can withdraw someone
else's interview by quoting its number.
"""

from __future__ import annotations

import json
import re

from sqlmodel import Session, select

from mailflow.answers import own_text
from mailflow.app import App
from mailflow.interviews import interview_confirmed_in, requeue_publications
from mailflow.models import InboundMessage, Interview, Publication, Subscription
from mailflow.parsing import ParsedMail
from mailflow.replies import reply_to
from mailflow.states import Decision, InboundState, PublicationState, join_reasons, transition

_COMMAND = re.compile(
    r"^\s*(withdraw|remove|delete|notify me|notify|stop|unsubscribe)\b[\s:#.!-]*(\d{1,5})?\s*[.!]?\s*$", re.IGNORECASE
)
_ALIASES = {"remove": "withdraw", "delete": "withdraw", "notify": "notify me", "unsubscribe": "stop"}
MAX_COMMAND_LINES = 3  # a command is a short message; a long one is something else


def parse_command(mail: ParsedMail) -> tuple[str, int | None] | None:
    """("withdraw", 7) for "withdraw 00007"; None when the message is not a one-word request."""
    lines = [line for line in own_text(mail).splitlines() if line.strip()]
    candidates = [mail.subject.removeprefix("Re:").removeprefix("RE:").strip(), *lines[:1]]
    if len(lines) > MAX_COMMAND_LINES:
        candidates = candidates[:1]
    for candidate in candidates:
        match = _COMMAND.match(candidate)
        if match:
            word = match.group(1).lower()
            return _ALIASES.get(word, word), int(match.group(2)) if match.group(2) else None
    return None


def handle_command(session: Session, app: App, inbound: InboundMessage, mail: ParsedMail) -> Decision | None:
    command = parse_command(mail)
    if command is None:
        return None
    word, number = command
    interview = _owned_interview(session, mail, inbound.sender_hash, number)
    if interview is None:
        if word == "stop":
            return _stop(session, app, inbound, mail)
        return InboundState.FOR_HOST, f"{word.replace(' ', '-')}-no-matching-interview"
    if word == "withdraw":
        return withdraw(session, app, interview, inbound, mail)
    if word == "notify me":
        return _notify(session, app, interview, inbound, mail)
    return _stop(session, app, inbound, mail)


def _owned_interview(session: Session, mail: ParsedMail, sender_hash: str, number: int | None) -> Interview | None:
    if not sender_hash:
        return None
    if number is not None:
        interview = session.exec(select(Interview).where(Interview.number == number)).first()
        return interview if interview is not None and interview.sender_hash == sender_hash else None
    confirmed = interview_confirmed_in(session, mail, sender_hash)
    if confirmed is not None:
        return confirmed
    owned = session.exec(select(Interview).where(Interview.sender_hash == sender_hash)).all()
    return owned[0] if len(owned) == 1 else None


def withdraw(
    session: Session, app: App, interview: Interview, inbound: InboundMessage | None, mail: ParsedMail | None
) -> Decision:
    """Take the page down and forget the answers; the number stays retired, so counting stays gapless."""
    number = interview.number
    take_down(session, app, interview)
    blocked = ""
    if mail is not None and inbound is not None:
        blocked = reply_to(session, app, inbound, mail, "withdrawn", {"number": number})
    return InboundState.ACTED_ON, join_reasons(f"withdrawn-{number:05d}", blocked)


def take_down(session: Session, app: App, interview: Interview) -> None:
    publication = session.exec(select(Publication).where(Publication.interview_id == interview.id)).first()
    if publication is None:  # numbered, its page and reply not written yet: they never will be
        session.add(Publication(interview_id=interview.id or 0, state=PublicationState.WITHDRAWN))
    elif publication.state == PublicationState.PUBLISHED or (
        publication.remote_id and publication.state in (PublicationState.QUEUED, PublicationState.FAILED)
    ):
        transition(publication, PublicationState.WITHDRAWAL_QUEUED, reason="withdrawn")
    elif publication.state not in (PublicationState.WITHDRAWN, PublicationState.WITHDRAWAL_QUEUED):
        transition(publication, PublicationState.WITHDRAWN, reason="withdrawn before publication")
    for subscription in session.exec(select(Subscription).where(Subscription.interview_id == interview.id)).all():
        session.delete(subscription)
    interview.answers_json = "[]"
    interview.related_json = "[]"
    interview.sender_hash = ""
    app.crossovers(session).remove(interview.number)
    # The pages that linked here lose the link.
    for other in session.exec(select(Interview).where(Interview.related_json.contains(str(interview.number)))).all():  # type: ignore[attr-defined]
        related = [n for n in json.loads(other.related_json) if n != interview.number]
        if related != json.loads(other.related_json):
            other.related_json = json.dumps(related)
            requeue_publications(session, [other.id or 0])


def _notify(session: Session, app: App, interview: Interview, inbound: InboundMessage, mail: ParsedMail) -> Decision:
    subscription = session.exec(select(Subscription).where(Subscription.interview_id == interview.id)).first()
    if subscription is None:
        session.add(Subscription(interview_id=interview.id or 0, address=mail.from_address))
    blocked = reply_to(session, app, inbound, mail, "notify_on", {"number": interview.number})
    return InboundState.ACTED_ON, join_reasons("notify-on", blocked)


def _stop(session: Session, app: App, inbound: InboundMessage, mail: ParsedMail) -> Decision:
    owned = session.exec(select(Interview.id).where(Interview.sender_hash == inbound.sender_hash)).all()
    for subscription in session.exec(select(Subscription).where(Subscription.interview_id.in_(owned))).all():  # type: ignore[attr-defined]
        session.delete(subscription)
    blocked = reply_to(session, app, inbound, mail, "notify_off", {})
    return InboundState.ACTED_ON, join_reasons("notify-off", blocked)
