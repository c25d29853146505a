"""With a backlog, a second process reads (parses, finds the answers of) the messages next in
line while the worker decides. Decisions are the same as without it; if the child dies or
stalls, the messages are read in their turn and nothing is lost."""

from __future__ import annotations

import logging
import sys
import time

import pytest
from sqlmodel import Session, select

from mailflow import background_reading, reading, worker
from mailflow.app import App
from mailflow.models import InboundMessage, Interview
from mailflow.parsing import ParsedMail, parse_message
from mailflow.testing import make_reply
from mailflow.worker import run_pass

from conftest import QUESTIONS, deliver, outbox_messages

FULL = {n: f"Answer number {n}, in my own words." for n in range(1, 9)}
SENDERS = [f"Person {n} <person{n}@example.net>" for n in range(1, 13)]


CHILD_DIES = [sys.executable, "-c", "import sys; sys.stdin.buffer.read(10); sys.exit(3)"]  # as if killed for memory
CHILD_STALLS = [sys.executable, "-c", "import time; time.sleep(60)"]  # a message it never finishes


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> list[ParsedMail]:
    """Background reading from the first message, in batches of 3; returns what this process parsed."""
    monkeypatch.setattr(reading, "BACKGROUND_FROM", 1)
    monkeypatch.setattr(reading, "BACKGROUND_BATCH", 3)
    monkeypatch.setattr(worker, "DECIDE_BATCH", 3)
    parsed_here: list[ParsedMail] = []

    def counting_parse(raw: bytes) -> ParsedMail:
        parsed_here.append(parse_message(raw))
        return parsed_here[-1]

    monkeypatch.setattr(reading, "parse_message", counting_parse)
    return parsed_here


def deliver_backlog(app: App) -> None:
    """Twelve complete replies with a request for the questionnaire as the fifth message."""
    for n, sender in enumerate(SENDERS, start=1):
        if n == 5:
            deliver(app, b"From: New <new@example.org>\r\nTo: interview@example.org\r\nSubject: interview\r\n"
                         b"Message-ID: <request@example.org>\r\n\r\nI would like to take part.\r\n")  # fmt: skip
        deliver(app, make_reply(FULL, sender=sender, questions=QUESTIONS))


def assert_decided_in_arrival_order(app: App) -> None:
    with Session(app.engine) as session:
        rows = session.exec(select(InboundMessage).order_by(InboundMessage.id)).all()
        assert [row.state for row in rows].count("numbered") == 12
        assert rows[4].state == "questionnaire_sent"
        interviews = session.exec(select(Interview).order_by(Interview.inbound_id)).all()
        assert [i.number for i in interviews] == list(range(1, 13))
    replies = {m["To"]: m.get_body(("plain",)).get_content() for m in outbox_messages(app)}
    for n in range(1, 13):
        assert f"{n:05d}" in replies[f"person{n}@example.net"]
    assert "new@example.org" in replies


def test_a_backlog_is_read_by_a_second_process_and_decided_as_without_it(
    app: App, small_batches: list[ParsedMail], caplog: pytest.LogCaptureFixture
) -> None:
    deliver_backlog(app)
    with caplog.at_level(logging.INFO, logger="mailflow.background_reading"):
        report = run_pass(app)
    assert report.decided == {"numbered": 12, "questionnaire_sent": 1}
    assert_decided_in_arrival_order(app)
    # The first batch is read here while the child starts; every later one by the child.
    assert [mail.message_id for mail in small_batches] == [
        parse_message(raw).message_id for raw in _raw_in_arrival_order(app)[:3]
    ]
    assert any("peak memory" in record.getMessage() for record in caplog.records)


def test_a_pass_of_a_few_messages_starts_no_second_process(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []
    monkeypatch.setattr(reading, "BackgroundReader", lambda *args: started.append(args))
    for sender in SENDERS[:3]:
        deliver(app, make_reply(FULL, sender=sender, questions=QUESTIONS))
    assert run_pass(app).decided == {"numbered": 3}
    assert started == []


@pytest.mark.parametrize("child", [CHILD_DIES, CHILD_STALLS], ids=["child-dies", "child-stalls"])
def test_if_the_second_process_dies_or_stalls_messages_are_read_in_their_turn(
    app: App, small_batches: list[ParsedMail], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, child: list[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(background_reading, "CHILD", child)
    monkeypatch.setattr(reading, "BACKGROUND_WAIT_SECONDS", 1.0)
    deliver_backlog(app)
    started = time.monotonic()
    report = run_pass(app)
    assert time.monotonic() - started < 30  # a stalled child is not waited for
    assert report.decided == {"numbered": 12, "questionnaire_sent": 1}
    assert_decided_in_arrival_order(app)
    assert len(small_batches) == 13  # all read here in the end
    assert any("background reader stopped" in record.getMessage() for record in caplog.records)


def _raw_in_arrival_order(app: App) -> list[bytes]:
    with Session(app.engine) as session:
        return [row.raw for row in session.exec(select(InboundMessage).order_by(InboundMessage.id)).all()]
