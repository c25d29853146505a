"""The host's desk: review, links and withdrawals, by email (replying to the digest) or the CLI.

Commands are accepted only from the host's address (and, where Authentication-Results is
configured, only when it passes: see process.py). Each line of the host's own text may
hold one command; every result is reported back in one reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session, select

from mailflow.answers import own_text
from mailflow.app import App
from mailflow.conversations import take_down
from mailflow.crossovers import refresh_related
from mailflow.interviews import link_crossovers, requeue_publications
from mailflow.models import Comment, CrossLink, InboundMessage, Interview, OutboxItem, Publication
from mailflow.parsing import ParsedMail
from mailflow.replies import send_email, tell_author
from mailflow.states import CommentState, Decision, InboundState, PublicationState, transition

_LINE = re.compile(
    r"^\s*(approve|reject|withdraw|link|unlink)\s+(comment\s+)?#?(\d{1,5})(?:\s+#?(\d{1,5}))?\s*(.*)$", re.IGNORECASE
)


@dataclass(frozen=True)
class CommandResult:
    ok: bool
    text: str


def approve(session: Session, app: App, number: int) -> CommandResult:
    found = _awaiting_review(session, number)
    if isinstance(found, CommandResult):
        return found
    interview, publication = found
    transition(publication, PublicationState.QUEUED, reason="approved")
    link_crossovers(session, app, interview)
    tell_author(session, app, interview, "published_after_review", app.publisher.permalink(interview.number))
    return CommandResult(True, f"Interview {number:05d} approved: it goes up on the next pass.")


def reject(session: Session, app: App, number: int, reason: str = "") -> CommandResult:
    found = _awaiting_review(session, number)
    if isinstance(found, CommandResult):
        return found
    _, publication = found
    transition(publication, PublicationState.REJECTED, reason=reason or "rejected")
    return CommandResult(
        True, f"Interview {number:05d} rejected{f' ({reason})' if reason else ''}; it will not be published."
    )


def host_withdraw(session: Session, app: App, number: int) -> CommandResult:
    interview, _ = _interview(session, number)
    if interview is None:
        return CommandResult(False, f"There is no interview {number:05d}.")
    take_down(session, app, interview)
    return CommandResult(True, f"Interview {number:05d} withdrawn: the page comes down on the next pass.")


def set_link(session: Session, app: App, first: int, second: int, *, add: bool) -> CommandResult:
    """Add or remove a cross-over in both directions; the host's choice wins over the automatic one."""
    a, page_a = _interview(session, first)
    b, page_b = _interview(session, second)
    # Only interviews with a page: one given its number a moment ago gets its links as it is answered.
    if a is None or b is None or page_a is None or page_b is None or first == second:
        return CommandResult(
            False, f"Cannot {'link' if add else 'unlink'} {first:05d} and {second:05d}: check both numbers."
        )
    kind = "added" if add else "removed"
    for source, target in ((first, second), (second, first)):
        for old in session.exec(
            select(CrossLink).where(CrossLink.from_number == source, CrossLink.to_number == target)
        ).all():
            session.delete(old)
        session.add(CrossLink(from_number=source, to_number=target, kind=kind))
    session.flush()
    for interview in (a, b):
        if refresh_related(session, app.crossovers(session), interview):
            requeue_publications(session, [interview.id or 0])
    return CommandResult(True, f"{'Linked' if add else 'Unlinked'} {first:05d} and {second:05d}.")


def retry_message(session: Session, message_id: int) -> CommandResult:
    """Try a failed incoming message again on the next pass (after a fix or an upgrade)."""
    message = session.get(InboundMessage, message_id)
    if message is None or message.state != InboundState.FAILED:
        return CommandResult(False, f"Message {message_id} has not failed; nothing to retry.")
    numbered = session.exec(select(Interview.id).where(Interview.inbound_id == message_id)).first() is not None
    # Given its number before it failed: only its page, cross-overs and reply are done again.
    again = InboundState.NUMBER_ASSIGNED if numbered else InboundState.RECEIVED
    transition(message, again, reason="retry asked by the host")
    message.reason = ""
    return CommandResult(True, f"Message {message_id} will be read again on the next pass.")


def moderate_comment(session: Session, comment_id: int, *, approve_it: bool) -> CommandResult:
    comment = session.get(Comment, comment_id)
    if comment is None or comment.state != CommentState.AWAITING_REVIEW:
        return CommandResult(False, f"Comment {comment_id} is not waiting for review.")
    transition(comment, CommentState.APPROVED if approve_it else CommentState.REJECTED)
    if approve_it:
        requeue_publications(session, [comment.interview_id])
    return CommandResult(True, f"Comment {comment_id} {'approved' if approve_it else 'rejected'}.")


def run_command_line(session: Session, app: App, line: str) -> CommandResult | None:
    match = _LINE.match(line)
    if match is None:
        return None
    verb, is_comment, first, second, rest = match.groups()
    verb, number = verb.lower(), int(first)
    if is_comment and verb in ("approve", "reject"):
        return moderate_comment(session, number, approve_it=verb == "approve")
    actions: dict[str, Callable[[], CommandResult]] = {
        "approve": lambda: approve(session, app, number),
        "reject": lambda: reject(session, app, number, " ".join(filter(None, (second, rest))).strip()),
        "withdraw": lambda: host_withdraw(session, app, number),
        "link": lambda: set_link(session, app, number, int(second or 0), add=True),
        "unlink": lambda: set_link(session, app, number, int(second or 0), add=False),
    }
    return actions[verb]()


HOST_EMAILS = ("digest", "host_commands")


def is_really_the_host(session: Session, app: App, mail: ParsedMail, authentication: str) -> bool:
    """A From header is easy to forge. With the host's mail server's verdict configured
    (authserv_id), commands need it to pass; without it, they must reply to an email only the
    host received from us (a digest or a command report): its Message-ID is the proof."""
    if app.settings.core.authserv_id:
        return authentication == "pass"
    referenced = [*mail.in_reply_to, *mail.references]
    if not referenced:
        return False
    query = select(OutboxItem.id).where(
        OutboxItem.message_id.in_(referenced),  # type: ignore[attr-defined]
        OutboxItem.kind.in_(HOST_EMAILS),  # type: ignore[attr-defined]
    )
    return session.exec(query.limit(1)).first() is not None


def handle_host_message(session: Session, app: App, inbound: InboundMessage, mail: ParsedMail) -> Decision:
    results = [result for line in own_text(mail).splitlines() if (result := run_command_line(session, app, line))]
    if not results:
        return InboundState.FOR_HOST, "host-message"
    send_email(
        session, app, kind="host_commands", recipient=mail.from_address,
        extra={"results": results}, inbound_id=inbound.id, answering=mail,
    )  # fmt: skip
    return (
        InboundState.ACTED_ON,
        f"host-commands: {sum(r.ok for r in results)} done, {sum(not r.ok for r in results)} refused",
    )


def _awaiting_review(session: Session, number: int) -> tuple[Interview, Publication] | CommandResult:
    interview, publication = _interview(session, number)
    if interview is None:
        return CommandResult(False, f"There is no interview {number:05d}.")
    if publication is None:
        return CommandResult(False, f"Interview {number:05d} was numbered moments ago: try again after the next pass.")
    if publication.state != PublicationState.AWAITING_REVIEW:
        return CommandResult(False, f"Interview {number:05d} is not waiting for review (it is {publication.state}).")
    return interview, publication


def _interview(session: Session, number: int) -> tuple[Interview | None, Publication | None]:
    # An interview given its number a moment ago has no page yet (worker.answer_batch writes it).
    query = select(Interview, Publication).outerjoin(Publication).where(Interview.number == number)  # type: ignore[arg-type]
    row = session.exec(query).first()
    return (row[0], row[1]) if row else (None, None)
