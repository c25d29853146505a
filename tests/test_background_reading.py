"""With a backlog, a second process reads (parses, finds the answers of) the messages next in
line while the worker decides. Decisions are the same as without it; if the child dies or
stalls, the messages are read in their turn and nothing is lost."""

from __future__ import annotations

import logging
import sys
import threading
import time

import pytest
from sqlmodel import Session, select

from mailflow import background_reading, neighbours, reading, worker
from mailflow.app import App
from mailflow.models import InboundMessage, Interview
from mailflow.parsing import ParsedMail, parse_message
from mailflow.scrub import EMAIL_MARK, NAME_MARK, PHONE_MARK
from mailflow.testing import make_reply, wait_until
from mailflow.worker import run_pass

from conftest import QUESTIONS, deliver, outbox_messages

pytestmark = pytest.mark.both_databases  # also on PostgreSQL: see conftest.pytest_generate_tests

FULL = {n: f"Answer number {n}, in my own words." for n in range(1, 9)}
SENDERS = [f"Person {n} <person{n}@example.net>" for n in range(1, 13)]
# Long answers: a batch of ten is well over a pipe's 64 KB, so a stalled child leaves writes stuck.
LONG = {n: f"Answer number {n}, at length. " + "Warehouse shifts and interviews, week after week. " * 40
        for n in range(1, 9)}  # fmt: skip


CHILD_DIES = [sys.executable, "-c", "import sys; sys.stdin.buffer.read(10); sys.exit(3)"]  # as if killed for memory
CHILD_STALLS = [sys.executable, "-c", "import time; time.sleep(60)"]  # a message it never finishes
CHILD_MISSING = ["/nonexistent/python3"]  # no process to be had


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> list[ParsedMail]:
    """Background reading from the first message, in batches of 3; returns what this process parsed."""
    monkeypatch.setattr(reading, "BACKGROUND_FROM", 1)
    monkeypatch.setattr(reading, "BACKGROUND_BATCH", 3)
    monkeypatch.setattr(worker, "DECIDE_BATCH", 3)
    monkeypatch.setattr(neighbours.os, "sched_getaffinity", lambda pid: {0, 1})  # a core to spare, whatever runs this
    parsed_here: list[ParsedMail] = []

    def counting_parse(raw: bytes) -> ParsedMail:
        parsed_here.append(parse_message(raw))
        return parsed_here[-1]

    monkeypatch.setattr(reading, "parse_message", counting_parse)
    return parsed_here


def deliver_backlog(app: App, answers: dict[int, str] = FULL) -> None:
    """Twelve complete replies with a request for the questionnaire as the fifth message."""
    for n, sender in enumerate(SENDERS, start=1):
        if n == 5:
            deliver(app, b"From: New <new@example.org>\r\nTo: interview@example.org\r\nSubject: interview\r\n"
                         b"Message-ID: <request@example.org>\r\n\r\nI would like to take part.\r\n")  # fmt: skip
        deliver(app, make_reply(answers, sender=sender, questions=QUESTIONS))


def assert_decided_in_arrival_order(app: App) -> None:
    with Session(app.engine) as session:
        rows = session.exec(select(InboundMessage).order_by(InboundMessage.id)).all()
        assert [row.state for row in rows].count("numbered") == 12
        assert rows[4].state == "questionnaire_sent"
        interviews = session.exec(select(Interview).order_by(Interview.inbound_id)).all()
        assert [i.number for i in interviews] == list(range(1, 13))
    sent = outbox_messages(app)
    replies = {m["To"]: m.get_body(("plain",)).get_content() for m in sent}
    assert len(sent) == len(replies) == 13, "one reply to each sender, no second one"
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


def test_with_as_many_workers_here_as_cores_no_second_process_starts(
    app: App, small_batches: list[ParsedMail], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker of this installation holds a slot on this two-core machine: with this
    one, no core is spare, and reading ahead would only slow both. Once it is gone, the
    next backlog is read ahead again."""
    started: list[object] = []
    real_reader = reading.BackgroundReader
    monkeypatch.setattr(reading, "BackgroundReader", lambda *args: started.append(args) or real_reader(*args))
    deliver_backlog(app)
    with neighbours.present(app.workers_path):  # the other worker
        assert neighbours.workers_here(app.workers_path) == 1
        assert run_pass(app).decided == {"numbered": 12, "questionnaire_sent": 1}
    assert started == [] and len(small_batches) == 13, "every message read in its turn"
    assert neighbours.workers_here(app.workers_path) == 0
    for sender in SENDERS:
        deliver(app, make_reply({**FULL, 1: "Changed my mind about the first."}, sender=sender, questions=QUESTIONS))
    run_pass(app)
    assert len(started) == 1


def test_a_slot_another_user_owns_is_counted_and_left_alone(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A slot file left by a worker run once as another user (root, say) cannot be opened:
    the pass takes the next slot, and counts that one as a worker (no second process)."""
    (tmp_path / "0.lock").touch()
    real_open = neighbours.os.open

    def refuse_slot_0(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path).endswith("0.lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(neighbours.os, "open", refuse_slot_0)
    with neighbours.present(tmp_path):
        assert (tmp_path / "1.lock").exists()
        assert neighbours.workers_here(tmp_path) == 2
    assert neighbours.workers_here(tmp_path) == 1


def test_a_batch_cut_short_by_its_time_keeps_what_it_read_for_the_next(
    app: App, small_batches: list[ParsedMail], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch is read whole before it is decided; when its time runs out after the first
    message (a slow database, a busy machine), the rest are decided next, not read again."""
    monkeypatch.setattr(background_reading, "CHILD", CHILD_MISSING)  # everything read in turn
    monkeypatch.setattr(worker, "DECIDE_SECONDS", 0.0)
    deliver_backlog(app)
    assert run_pass(app).decided == {"numbered": 12, "questionnaire_sent": 1}
    assert_decided_in_arrival_order(app)
    assert len(small_batches) == 13, "each message read once"


def test_a_pass_of_a_few_messages_starts_no_second_process(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []
    monkeypatch.setattr(reading, "BackgroundReader", lambda *args: started.append(args))
    for sender in SENDERS[:3]:
        deliver(app, make_reply(FULL, sender=sender, questions=QUESTIONS))
    assert run_pass(app).decided == {"numbered": 3}
    assert started == []


@pytest.mark.parametrize(
    ("child", "batch", "answers"),
    [(CHILD_DIES, 3, FULL), (CHILD_STALLS, 3, FULL), (CHILD_STALLS, 10, LONG), (CHILD_MISSING, 3, FULL)],
    ids=["child-dies", "child-stalls", "child-stalls-with-a-full-pipe", "no-child-to-be-had"],
)
def test_if_the_second_process_dies_or_stalls_messages_are_read_in_their_turn(
    app: App, small_batches: list[ParsedMail], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, child: list[str], batch: int, answers: dict[int, str],
) -> None:  # fmt: skip
    monkeypatch.setattr(background_reading, "CHILD", child)
    monkeypatch.setattr(reading, "BACKGROUND_WAIT_SECONDS", 1.0)
    monkeypatch.setattr(reading, "BACKGROUND_BATCH", batch)
    threads_before = threading.active_count()
    deliver_backlog(app, answers)
    started = time.monotonic()
    report = run_pass(app)
    assert time.monotonic() - started < 30  # a stalled child is not waited for
    assert report.decided == {"numbered": 12, "questionnaire_sent": 1}
    assert_decided_in_arrival_order(app)
    assert len(small_batches) == 13  # all read here in the end
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert any("background reader" in warning for warning in warnings), warnings
    assert "failed" not in caplog.text  # no step of the pass failed
    assert wait_until(lambda: threading.active_count() <= threads_before, timeout=5), "the reader's threads ended"


def test_answers_read_in_the_second_process_are_scrubbed_as_in_turn(app: App, small_batches: list[ParsedMail]) -> None:
    """The promise of anonymity holds whichever process read the answers."""
    telling = {n: f"Answer {n}: I am Jane Roe; call me on +44 7700 900123 or write to jane.roe@example.net."
               for n in range(1, 9)}  # fmt: skip
    for n in range(1, 9):
        deliver(app, make_reply(telling, sender="Jane Roe <jane.roe@example.net>", questions=QUESTIONS,
                                message_id=f"<jane{n}@example.net>"))  # fmt: skip
    run_pass(app)
    assert len(small_batches) == 3  # the rest were read by the child
    with Session(app.engine) as session:
        answers = [i.answers_json for i in session.exec(select(Interview)).all()]
    assert answers and all("Jane" not in a and "7700" not in a and "jane.roe" not in a for a in answers)
    assert all(NAME_MARK in a and PHONE_MARK in a and EMAIL_MARK in a for a in answers)


def _raw_in_arrival_order(app: App) -> list[bytes]:
    with Session(app.engine) as session:
        return [row.raw for row in session.exec(select(InboundMessage).order_by(InboundMessage.id)).all()]
