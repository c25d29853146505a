"""Workers take turns where order matters and work side by side elsewhere: numbers are given
in turn (in arrival order); pages, cross-overs and replies follow under a turn of their own;
a worker waiting for its turn reads ahead; a page's row another worker holds does not make
this one hold others while it waits."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from mailflow import reading as reading_module
from mailflow import worker as worker_module
from mailflow.app import App, build_app
from mailflow.cli import main
from mailflow.config import load_settings
from mailflow.db import held, is_deadlock, lock_key, transaction, turn
from mailflow.errors import SourceError
from mailflow.models import InboundMessage, Interview, OutboxItem, PendingLinks, Publication
from mailflow.publishing import publish_batch
from mailflow.reading import ReadAhead
from mailflow.sending import BackgroundSender
from mailflow.testing import make_reply, make_settings, wait_until
from mailflow.worker import (
    FETCH_TURN,
    PassReport,
    _fetch,
    answer_batch,
    decide_batch,
    fetch,
    process_all,
    relink_older_pages,
    run_pass,
)

from conftest import QUESTIONS, deliver, outbox_messages
from databases import fresh_postgres_database

FULL = {n: f"Answer number {n}, in my own words." for n in range(1, 9)}
SENDERS = ("Ada <ada@example.net>", "Bo <bo@example.net>", "Cy <cy@example.net>", "Di <di@example.net>")


def never() -> bool:
    return False


@pytest.fixture
def postgres_app(tmp_path: Path) -> Iterator[App]:
    with fresh_postgres_database() as url:
        app = build_app(load_settings(make_settings(tmp_path, database=url)))
        yield app
        app.close()


def fetched(app: App, count: int) -> list[int]:
    """`count` complete replies, stored as received; their inbound ids, oldest first."""
    for sender in SENDERS[:count]:
        deliver(app, make_reply(FULL, sender=sender, questions=QUESTIONS))
    fetch(app, PassReport(), never)
    with Session(app.engine) as session:
        return [row.id or 0 for row in session.exec(select(InboundMessage).order_by(InboundMessage.id)).all()]


@pytest.mark.both_databases
def test_a_number_given_but_not_answered_is_answered_by_the_next_pass(app: App) -> None:
    """A worker that stops between giving numbers and answering leaves rows that say so;
    the next pass (another process, nothing in memory) writes the pages and replies."""
    fetched(app, 2)
    sender = BackgroundSender(app)
    decided = decide_batch(app, sender, ReadAhead(app), {}, never, wait=True)
    sender.finish()
    assert decided == ["number_assigned", "number_assigned"]
    with Session(app.engine) as session:
        assert [i.number for i in session.exec(select(Interview).order_by(Interview.number)).all()] == [1, 2]
        assert session.exec(select(Publication)).all() == [] and session.exec(select(OutboxItem)).all() == []
    app.close()

    again = build_app(load_settings(app.settings.path))
    report = run_pass(again)
    assert report.decided == {"numbered": 2}
    replies = {m["To"]: m.get_body(("plain",)).get_content() for m in outbox_messages(again)}
    assert "00001" in replies["ada@example.net"] and "00002" in replies["bo@example.net"]
    with Session(again.engine) as session:
        assert len(session.exec(select(Publication)).all()) == 2
        assert {m.state for m in session.exec(select(InboundMessage)).all()} == {"numbered"}
    again.close()


def test_a_worker_waiting_for_its_turn_reads_only_what_no_one_has_taken(postgres_app: App, monkeypatch) -> None:
    first, second, third, fourth = fetched(postgres_app, 4)
    reader = ReadAhead(postgres_app)
    with transaction(postgres_app.engine) as deciding:  # another worker is deciding the first two
        deciding.exec(select(InboundMessage).where(InboundMessage.id.in_([first, second])).with_for_update())  # type: ignore[union-attr]
        assert reader.read_next() == 2
    assert reader.read_next() == 2  # the first two, no longer taken; the others are read already
    assert reader.read_next() == 0

    def parse_again(raw: bytes) -> None:
        raise AssertionError("read twice")

    monkeypatch.setattr(reading_module, "parse_message", parse_again)
    with Session(postgres_app.engine) as session:
        rows = {row.id: row for row in session.exec(select(InboundMessage)).all()}
    assert reader.reading(rows[third]).mail.from_address == "cy@example.net"
    assert reader.reading(rows[fourth]).answers.found[8] == FULL[8]
    # Those read before the one decided here were decided by another worker: they were let go.
    with pytest.raises(AssertionError, match="read twice"):
        reader.reading(rows[first])


def test_the_turn_on_the_cross_overs_lasts_until_the_transaction_ends(postgres_app: App) -> None:
    turns: list[str] = []
    event.listen(postgres_app.engine, "before_cursor_execute", lambda _c, _cur, sql, *_: turns.append(sql))
    with transaction(postgres_app.engine) as answering:
        postgres_app.crossovers(answering)
        with transaction(postgres_app.engine) as other:
            assert not lock_key(other, "mailflow-crossovers", wait=False)
        postgres_app.crossovers(answering)  # the same transaction: the turn is not asked for again
    assert len([sql for sql in turns if "pg_advisory_xact_lock" in sql]) == 1
    with transaction(postgres_app.engine) as other:
        assert lock_key(other, "mailflow-crossovers", wait=False)


def test_a_message_another_worker_is_reading_is_waited_for_not_skipped(postgres_app: App) -> None:
    """Numbers follow arrival even when the oldest message is being read ahead elsewhere at
    the moment the turn comes: the decider waits the few milliseconds, it does not skip it."""
    first, second = fetched(postgres_app, 2)
    sender, decided = BackgroundSender(postgres_app), []
    with transaction(postgres_app.engine) as reading_ahead:
        reading_ahead.exec(select(InboundMessage).where(InboundMessage.id == first).with_for_update())
        deciding = threading.Thread(
            target=lambda: decided.extend(
                decide_batch(postgres_app, sender, ReadAhead(postgres_app), {}, never, wait=True) or []
            )
        )
        deciding.start()
        deciding.join(1.0)
        assert deciding.is_alive() and not decided
    deciding.join(15)
    sender.finish()
    assert decided == ["number_assigned", "number_assigned"]
    with Session(postgres_app.engine) as session:
        numbers = {i.inbound_id: i.number for i in session.exec(select(Interview)).all()}
    assert numbers == {first: 1, second: 2}


@pytest.mark.both_databases
def test_an_interview_withdrawn_before_its_reply_gets_no_page_and_no_reply(app: App) -> None:
    """The host withdraws (or a person is forgotten) between the number and the reply:
    nothing goes up and nothing is sent; the number stays retired."""
    fetched(app, 1)
    sender = BackgroundSender(app)
    assert decide_batch(app, sender, ReadAhead(app), {}, never, wait=True) == ["number_assigned"]
    sender.finish()
    result = CliRunner().invoke(main, ["--config", str(app.settings.path), "withdraw", "1"])
    assert result.exit_code == 0, result.output
    report = run_pass(app)
    assert report.decided == {"numbered": 1} and report.published == 0
    assert outbox_messages(app) == []
    with Session(app.engine) as session:
        [publication] = session.exec(select(Publication)).all()
        [message] = session.exec(select(InboundMessage)).all()
    assert publication.state == "withdrawn" and "interview-00001" in message.reason


def test_a_deadlock_between_two_workers_is_recognised(postgres_app: App) -> None:
    """PostgreSQL breaks a deadlock by undoing one transaction; that one is done again."""
    errors: list[Exception] = []
    both_hold_one = threading.Barrier(2)

    def worker(mine: str, theirs: str) -> None:
        try:
            with transaction(postgres_app.engine) as session:
                lock_key(session, mine)
                both_hold_one.wait()
                lock_key(session, theirs)
        except OperationalError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    [undone] = errors
    assert is_deadlock(undone)
    assert not is_deadlock(OperationalError("SELECT 1", {}, Exception("server closed the connection")))


def test_a_page_another_worker_holds_is_recorded_after_the_others(postgres_app: App, monkeypatch) -> None:
    """While pages go up, another worker may lock one of their rows (relinking it as it
    decides): the others are recorded at once, that one when it is free, and meanwhile
    this worker holds no row the other may be waiting for (no deadlock)."""
    app = postgres_app
    fetched(app, 2)
    sender = BackgroundSender(app)
    process_all(app, PassReport(), sender, never)
    sender.finish()
    with Session(app.engine) as session:
        first, second = [p.id or 0 for p in session.exec(select(Publication).order_by(Publication.id)).all()]

    def state(publication_id: int) -> str:
        with Session(app.engine) as session:
            row = session.get(Publication, publication_id)
            assert row is not None
            return row.state

    real_publish, outcome = app.publisher.publish, {}
    with app.engine.connect() as other_worker:
        holding = other_worker.begin()

        def publish_as_the_other_worker_takes_the_second(*args):  # type: ignore[no-untyped-def]
            other_worker.execute(text("SELECT id FROM publication WHERE id = :id FOR UPDATE"), {"id": second})
            return real_publish(*args)

        monkeypatch.setattr(app.publisher, "publish", publish_as_the_other_worker_takes_the_second)
        publishing = threading.Thread(target=lambda: outcome.update(done=publish_batch(app, [first, second])))
        publishing.start()
        assert wait_until(lambda: state(first) == "published", timeout=15), "the free page waits for the held one"
        assert state(second) == "queued" and publishing.is_alive()
        holding.commit()
    publishing.join(15)
    assert outcome["done"] == (2, 0) and state(second) == "published"


@pytest.mark.both_databases
def test_a_batch_undone_to_break_a_deadlock_is_done_again_and_counted_once(app: App, monkeypatch) -> None:
    """PostgreSQL undoes one of two transactions that wait on each other; the worker whose
    batch was undone decides it again: every reply numbered once, one reply each."""
    from mailflow import worker

    fetched(app, 3)
    real_decide, calls = worker.decide_batch, []

    def undone_the_first_time(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            deadlock = type("DeadlockDetected", (Exception,), {"sqlstate": "40P01"})("deadlock detected")
            raise OperationalError("UPDATE publication ...", {}, deadlock)
        return real_decide(*args, **kwargs)

    monkeypatch.setattr(worker, "decide_batch", undone_the_first_time)
    report = run_pass(app)
    assert len(calls) >= 2 and report.decided == {"numbered": 3}
    assert sorted(m["To"] for m in outbox_messages(app)) == ["ada@example.net", "bo@example.net", "cy@example.net"]
    with Session(app.engine) as session:
        assert [i.number for i in session.exec(select(Interview).order_by(Interview.number)).all()] == [1, 2, 3]


def test_one_worker_fetches_at_a_time_and_the_others_decide_what_it_stores(postgres_app: App) -> None:
    """Workers polling one mailbox would each download every message: while one fetches, a
    pass elsewhere does not; it decides what the fetching worker stores, and when it runs
    out before that worker has finished it waits for it rather than ending its pass."""
    for sender in SENDERS[:2]:
        deliver(postgres_app, make_reply(FULL, sender=sender, questions=QUESTIONS))
    other = build_app(load_settings(postgres_app.settings.path))  # the fetching worker, as another process would be
    holding, release = threading.Event(), threading.Event()

    def fetching_worker() -> None:
        with turn(other.engine, FETCH_TURN) as ours:
            assert ours
            holding.set()
            release.wait(10)
            _fetch(other, PassReport(), never)  # it stores them only now

    fetcher = threading.Thread(target=fetching_worker)
    fetcher.start()
    try:
        assert holding.wait(10)
        threading.Timer(0.5, release.set).start()
        report = run_pass(postgres_app)
    finally:
        release.set()
        fetcher.join(10)
        other.close()
    assert report.fetched == 0  # it did not download them too
    assert report.decided == {"numbered": 2}  # it waited for the other's fetch and decided both
    assert {m["To"] for m in outbox_messages(postgres_app)} == {"ada@example.net", "bo@example.net"}


def test_the_fetch_turn_is_let_go_when_the_fetch_fails(postgres_app: App, monkeypatch) -> None:
    def broken(*_args: object) -> None:
        raise SourceError("the mailbox cannot be reached")

    monkeypatch.setattr(worker_module, "_fetch", broken)
    run_pass(postgres_app)
    with turn(postgres_app.engine, FETCH_TURN) as ours:
        assert ours


def test_asking_whether_a_turn_is_held_neither_takes_it_nor_keeps_another_from_it(postgres_app: App) -> None:
    engine = postgres_app.engine
    with transaction(engine) as looking:
        assert not held(looking, FETCH_TURN)
        with turn(engine, FETCH_TURN) as ours:  # the looker's transaction is still open
            assert ours
            with transaction(engine) as other:
                assert held(other, FETCH_TURN) and not held(other, "mailflow-something-else")
            with turn(engine, FETCH_TURN) as again:
                assert not again
    with transaction(engine) as other:
        assert not held(other, FETCH_TURN)
        lock_key(other, FETCH_TURN)
        with transaction(engine) as looking:
            assert held(looking, FETCH_TURN)


def test_older_pages_are_relinked_side_by_side_but_never_beside_a_holder_of_the_whole_turn(
    postgres_app: App,
) -> None:
    """Relinking takes the turn on the cross-overs shared: two workers relink at once (each
    on the rows it locks), but not while another transaction holds the whole turn (answering,
    or a host's withdrawal, which rewrites the same older pages' links)."""
    fetched(postgres_app, 2)
    sender = BackgroundSender(postgres_app)
    process_all(postgres_app, PassReport(), sender, never)
    sender.finish()
    with Session(postgres_app.engine) as session:
        assert session.exec(select(PendingLinks.number)).all() == [2]  # it has an older page to relink
        first = session.exec(select(Interview).where(Interview.number == 1)).one()
        assert json.loads(first.related_json) == []  # it was answered before the second
    with transaction(postgres_app.engine) as answering:
        lock_key(answering, "mailflow-crossovers")
        relinking = threading.Thread(target=relink_older_pages, args=(postgres_app,))
        relinking.start()
        relinking.join(1)
        assert relinking.is_alive(), "relinking went on beside a holder of the whole turn"
    relinking.join(10)
    assert not relinking.is_alive()
    with Session(postgres_app.engine) as session:
        first = session.exec(select(Interview).where(Interview.number == 1)).one()
        assert json.loads(first.related_json) == [2]
        assert session.exec(select(PendingLinks)).all() == []
    with transaction(postgres_app.engine) as relinking_elsewhere:
        lock_key(relinking_elsewhere, "mailflow-crossovers", shared=True)
        with transaction(postgres_app.engine) as session:
            assert lock_key(session, "mailflow-crossovers", wait=False, shared=True)
            assert not held(session, "mailflow-nothing")


def test_a_worker_answers_what_it_numbered_and_another_workers_only_once_that_one_has_stopped(
    postgres_app: App, monkeypatch
) -> None:
    """Taking another worker's numbered messages the moment they are numbered would read
    them again, and that worker's reading would go to waste: each answers its own; what a
    worker numbered and left (it stopped) is taken only once there is nothing left to decide."""
    first, second, third, fourth = fetched(postgres_app, 4)
    other = build_app(load_settings(postgres_app.settings.path))
    ours, theirs = BackgroundSender(postgres_app), BackgroundSender(other)
    monkeypatch.setattr(worker_module, "DECIDE_BATCH", 2)
    try:
        their_numbers: dict = {}
        our_numbers: dict = {}
        decide_batch(other, theirs, ReadAhead(other), their_numbers, never, wait=True)  # the two oldest
        decide_batch(postgres_app, ours, ReadAhead(postgres_app), our_numbers, never, wait=True)
        assert sorted(their_numbers) == [first, second] and sorted(our_numbers) == [third, fourth]

        def parse_again(raw: bytes) -> None:
            raise AssertionError("read twice")

        with monkeypatch.context() as reading_again:
            reading_again.setattr(reading_module, "parse_message", parse_again)
            assert answer_batch(postgres_app, ours, our_numbers, never, anyones=False) == ["numbered"] * 2
        with Session(postgres_app.engine) as session:
            states = {m.id: m.state for m in session.exec(select(InboundMessage)).all()}
        assert states == {first: "number_assigned", second: "number_assigned", third: "numbered", fourth: "numbered"}
        # The other worker stops here; with nothing left to decide, this one answers its two.
        assert answer_batch(postgres_app, ours, our_numbers, never, anyones=False) == []
        assert answer_batch(postgres_app, ours, our_numbers, never, anyones=True) == ["numbered"] * 2
    finally:
        ours.finish()
        theirs.finish()
        other.close()
    assert {m["To"] for m in outbox_messages(postgres_app)} == {
        "ada@example.net", "bo@example.net", "cy@example.net", "di@example.net"
    }  # fmt: skip
