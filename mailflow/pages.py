"""Page models: what site templates and publishers receive, built from scrubbed answers only.

A page model never carries an ORM row, so a template cannot reach a column (a sender
hash, a raw message) by accident. Dates are days: the time of day of a submission is
not published.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, select

from mailflow.crossovers import VISIBLE
from mailflow.models import Comment, Interview, Publication
from mailflow.render import format_number
from mailflow.states import CommentState

EXCERPT_CHARS = 220


@dataclass(frozen=True)
class SiteInfo:
    name: str
    base_url: str
    language: str
    interview_address: str


@dataclass(frozen=True)
class QuestionAndAnswer:
    question: str
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class RelatedLink:
    number_text: str
    url: str
    excerpt: str


@dataclass(frozen=True)
class CommentView:
    """A comment as readers see it: the signature its author chose, never their address."""

    signature: str
    verified_number: str
    paragraphs: tuple[str, ...]
    date_iso: str
    date_text: str
    key: str = ""  # mailflow's own id for it, so a blog that keeps comments can find it again

    @property
    def byline(self) -> str:
        """Who wrote it, as a blog that takes only a name shows it."""
        if self.verified_number:
            return f"Interview #{self.verified_number} (verified)"
        return self.signature or "Anonymous"


@dataclass(frozen=True)
class InterviewPage:
    number: int
    number_text: str
    title: str
    slug: str
    date_iso: str
    date_text: str
    items: tuple[QuestionAndAnswer, ...]
    excerpt: str
    url: str
    related: tuple[RelatedLink, ...] = ()
    comments: tuple[CommentView, ...] = ()
    comment_address: str = ""


def answers_to_json(questions: Sequence[str], found: dict[int, str]) -> str:
    """Store each answer with the question as it was asked, so editing the questions file later
    does not change what a published interview says."""
    return json.dumps(
        [{"question": questions[n - 1], "answer": answer} for n, answer in sorted(found.items())],
        ensure_ascii=False,
    )


def day_text(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def excerpt_of(answers_json: str) -> str:
    first = next((p for item in json.loads(answers_json) for p in item["answer"].split("\n\n") if p), "")
    return first if len(first) <= EXCERPT_CHARS else first[:EXCERPT_CHARS].rsplit(" ", 1)[0] + "…"


def interview_page(
    number: int,
    answers_json: str,
    submitted_on: date,
    site_name: str,
    url: str,
    *,
    related: tuple[RelatedLink, ...] = (),
    comments: tuple[CommentView, ...] = (),
    comment_address: str = "",
) -> InterviewPage:
    items = tuple(
        QuestionAndAnswer(item["question"], tuple(p for p in item["answer"].split("\n\n") if p))
        for item in json.loads(answers_json)
    )
    number_text = format_number(number)
    return InterviewPage(
        number=number,
        number_text=number_text,
        title=f"{site_name} #{number_text}",
        slug=f"interview-{number_text}",
        date_iso=submitted_on.isoformat(),
        date_text=day_text(submitted_on),
        items=items,
        excerpt=excerpt_of(answers_json),
        url=url,
        related=related,
        comments=comments,
        comment_address=comment_address,
    )


def load_pages(
    session: Session,
    interviews: Sequence[tuple[Interview, str]],
    *,
    site_name: str,
    permalink: Callable[[int], str],
    comment_address: str,
) -> list[InterviewPage]:
    """The full page models for (interview, url) pairs: answers, related interviews and
    approved comments. Two queries whatever the number of pages (a batch is published at once)."""
    wanted = {number for interview, _ in interviews for number in json.loads(interview.related_json)}
    visible: dict[int, RelatedLink] = {}
    if wanted:
        rows = session.exec(
            select(Interview, Publication)
            .join(Publication, Publication.interview_id == Interview.id)  # type: ignore[arg-type]
            .where(Interview.number.in_(wanted), Publication.state.in_(VISIBLE))  # type: ignore[attr-defined]
        ).all()
        visible = {
            row.number: RelatedLink(
                format_number(row.number), publication.url or permalink(row.number), excerpt_of(row.answers_json)
            )
            for row, publication in rows
        }
    comments: dict[int, list[CommentView]] = {}
    for comment in session.exec(
        select(Comment)
        .where(Comment.interview_id.in_([interview.id for interview, _ in interviews]))  # type: ignore[attr-defined]
        .where(Comment.state == CommentState.APPROVED)
        .order_by(Comment.id)  # type: ignore[arg-type]
    ).all():
        comments.setdefault(comment.interview_id, []).append(comment_view(comment))
    return [
        interview_page(
            interview.number,
            interview.answers_json,
            interview.submitted_on,
            site_name,
            url or permalink(interview.number),
            related=tuple(visible[n] for n in json.loads(interview.related_json) if n in visible),
            comments=tuple(comments.get(interview.id or 0, ())),
            comment_address=comment_address,
        )
        for interview, url in interviews
    ]


def comment_view(comment: Comment) -> CommentView:
    return CommentView(
        signature=comment.signature,
        verified_number=format_number(comment.verified_number) if comment.verified_number else "",
        paragraphs=tuple(p for p in comment.body.split("\n\n") if p),
        date_iso=comment.created_on.isoformat(),
        date_text=day_text(comment.created_on),
        key=str(comment.id or ""),
    )
