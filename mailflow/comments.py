"""Comments by email: "use your own name, a nickname or your unique interview number".

Each page's comment link opens a message with the subject "Comment on interview 00007".
The last short line of the comment is its signature. A number is shown as verified only
when the comment comes from that interview's own author (same keyed sender hash);
otherwise the comment is shown unsigned, never under a number it cannot prove.
"""

from __future__ import annotations

import re

from sqlmodel import Session, select

from mailflow.answers import join_paragraphs, own_text
from mailflow.app import App
from mailflow.interviews import requeue_publications
from mailflow.models import Comment, InboundMessage, Interview, Publication
from mailflow.parsing import ParsedMail
from mailflow.replies import reply_to
from mailflow.scrub import scrub_answer, sender_names
from mailflow.states import CommentState, Decision, InboundState, PublicationState, join_reasons

_SUBJECT = re.compile(r"\bcomment\s+on\s+(?:the\s+)?(?:interview\s+)?#?\s*(\d{1,5})\b", re.IGNORECASE)
_NUMBER_SIGNATURE = re.compile(r"^(?:interview\s*)?(?:no\.?\s*|number\s*)?#?\s*(\d{1,5})$", re.IGNORECASE)
MAX_SIGNATURE = 40
MAX_COMMENT = 5000
ANONYMOUS = ""


def handle_comment(session: Session, app: App, inbound: InboundMessage, mail: ParsedMail) -> Decision | None:
    match = _SUBJECT.search(mail.subject)
    if match is None:
        return None
    number = int(match.group(1))
    row = session.exec(
        select(Interview, Publication).join(Publication).where(Interview.number == number)  # type: ignore[arg-type]
    ).first()
    if row is None or not is_on_the_blog(row[1]):
        return InboundState.FOR_HOST, "comment-on-unknown-interview"
    interview, _ = row
    body, signature = split_signature(own_text(mail))
    if not body:
        return InboundState.FOR_HOST, "empty-comment"
    verified = None
    numbered = _NUMBER_SIGNATURE.match(signature)
    if numbered:
        claimed = session.exec(select(Interview).where(Interview.number == int(numbered.group(1)))).first()
        verified = (
            claimed.number if claimed and claimed.sender_hash and claimed.sender_hash == inbound.sender_hash else None
        )
        signature = ANONYMOUS
    state = CommentState.AWAITING_REVIEW if app.settings.core.moderate_comments else CommentState.APPROVED
    session.add(
        Comment(
            interview_id=interview.id or 0,
            inbound_id=inbound.id or 0,
            # A verified comment must not put its author's name next to their number.
            body=scrub_answer(body[:MAX_COMMENT], sender_names(mail.from_name, mail.from_address) if verified else ()),
            signature=scrub_answer(signature)[:MAX_SIGNATURE],
            verified_number=verified,
            sender_hash=inbound.sender_hash,
            state=state.value,
            created_on=inbound.arrived_at.date(),
        )
    )
    if state == CommentState.APPROVED:
        requeue_publications(session, [interview.id or 0])
    extra = {"number": number, "moderated": state != CommentState.APPROVED, "page_url": row[1].url}
    blocked = reply_to(session, app, inbound, mail, "comment_received", extra)
    return InboundState.ACTED_ON, join_reasons(f"comment-on-{number:05d}", blocked)


def is_on_the_blog(publication: Publication) -> bool:
    """Published, possibly with an update on its way (another comment, an edit)."""
    return bool(publication.remote_id) and publication.state in (PublicationState.PUBLISHED, PublicationState.QUEUED)


def split_signature(text: str) -> tuple[str, str]:
    """("the comment", "Jo") from a comment whose last short line is "— Jo"."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    content = [i for i, line in enumerate(lines) if line.strip()]
    if len(content) < 2:
        return "\n\n".join(join_paragraphs(lines)), ANONYMOUS
    last = lines[content[-1]].strip().lstrip("-—–~ ").strip()
    if len(last) > MAX_SIGNATURE or last.endswith((".", "?", "!")):
        return "\n\n".join(join_paragraphs(lines)), ANONYMOUS
    return "\n\n".join(join_paragraphs(lines[: content[-1]])), last
