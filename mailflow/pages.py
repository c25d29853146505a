"""Page models: what site templates and publishers receive, built from scrubbed answers only.

A page model never carries an ORM row, so a template cannot reach a column (a sender
hash, a raw message) by accident. Dates are days: the time of day of a submission is
not published.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from mailflow.render import format_number

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


def answers_to_json(questions: Sequence[str], found: dict[int, str]) -> str:
    """Store each answer with the question as it was asked, so editing the questions file later
    does not change what a published interview says."""
    return json.dumps(
        [{"question": questions[n - 1], "answer": answer} for n, answer in sorted(found.items())],
        ensure_ascii=False,
    )


def interview_page(number: int, answers_json: str, submitted_on: date, site_name: str, url: str) -> InterviewPage:
    items = tuple(
        QuestionAndAnswer(item["question"], tuple(p for p in item["answer"].split("\n\n") if p))
        for item in json.loads(answers_json)
    )
    first = next((item.paragraphs[0] for item in items if item.paragraphs), "")
    excerpt = first if len(first) <= EXCERPT_CHARS else first[:EXCERPT_CHARS].rsplit(" ", 1)[0] + "…"
    number_text = format_number(number)
    return InterviewPage(
        number=number,
        number_text=number_text,
        title=f"{site_name} #{number_text}",
        slug=f"interview-{number_text}",
        date_iso=submitted_on.isoformat(),
        date_text=f"{submitted_on.day} {submitted_on:%B %Y}",
        items=items,
        excerpt=excerpt,
        url=url,
    )
