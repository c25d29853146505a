"""Every message of the shared real-world corpus goes through the worker: nothing crashes,
each ends in a recorded state with a reason, and no automatic message is answered."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlmodel import Session, select

from mailflow.app import build_app
from mailflow.config import load_settings
from mailflow.models import InboundMessage, OutboxItem
from mailflow.parsing import parse_message
from mailflow.testing import make_settings
from mailflow.worker import PassReport, run_pass

from conftest import deliver
from corpus import corpus_files

AUTOMATIC = {"auto-reply", "bounce", "list"}


@dataclass
class CorpusRun:
    report: PassReport
    rows: list[InboundMessage]
    answered: set[int | None]
    categories: dict[str, frozenset[str]]


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusRun]:
    """One pass of the worker over the whole corpus, shared by the tests below (it takes ~15 s)."""
    files = corpus_files()
    app = build_app(load_settings(make_settings(tmp_path_factory.mktemp("corpus"))))
    categories = {}
    for item in files:
        path = deliver(app, item.path.read_bytes())
        categories["maildir:" + path.name] = item.categories
    report = run_pass(app)
    with Session(app.engine) as session:
        rows = list(session.exec(select(InboundMessage)).all())
        answered = {item.inbound_id for item in session.exec(select(OutboxItem)).all()}
    yield CorpusRun(report, rows, answered, categories)
    app.close()


def test_every_corpus_message_parses_without_raising() -> None:
    for item in corpus_files():
        parsed = parse_message(item.path.read_bytes())
        assert parsed.size == item.path.stat().st_size, item.name


def test_every_corpus_message_ends_in_a_recorded_state_with_a_reason(corpus_run: CorpusRun) -> None:
    assert corpus_run.report.fetched == len(corpus_run.categories)
    assert len(corpus_run.rows) == len(corpus_run.categories)
    states = {row.state for row in corpus_run.rows}
    assert "received" not in states
    assert "failed" not in states, [row.reason for row in corpus_run.rows if row.state == "failed"][:5]
    assert all(row.reason for row in corpus_run.rows)


def test_no_automatic_corpus_message_is_answered(corpus_run: CorpusRun) -> None:
    wrongly_answered = [
        (row.source_key, sorted(corpus_run.categories[row.source_key] & AUTOMATIC))
        for row in corpus_run.rows
        if row.id in corpus_run.answered and corpus_run.categories[row.source_key] & AUTOMATIC
    ]
    assert wrongly_answered == []


def test_no_corpus_message_is_mistaken_for_an_interview(corpus_run: CorpusRun) -> None:
    """None of these messages answers our questionnaire; numbered lists and odd bodies must not count."""
    assert corpus_run.report.decided["numbered"] == 0
    assert corpus_run.report.decided["incomplete"] == 0
