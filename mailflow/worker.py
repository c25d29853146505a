"""A pass is a short tuple of verbs: fetch, process, relink, publish, send, file.

fetch   stores each new message raw as `received`, a batch per commit (one worker at a
        time: the others decide what it stores meanwhile);
process decides received messages oldest first, a batch per transaction as one unit (one
        savepoint; one per message should any fail: process.py); numbered replies are then
        answered a batch at a time the same way, while a background sender already sends
        the replies of the batches before (sending.py) and, for a backlog, a second process
        reads the next messages (background_reading.py);
relink  refreshes, once each, the older pages related to the pass's new interviews;
publish puts queued interviews on the blog, then refreshes the listing once, while the
        sender sends the last replies;
send    hands what is still queued to the outbox, with bounded retries;
file    moves or marks the mailbox copies of decided messages, a batch per command.
Each step acts on rows, so a crash anywhere resumes on the next pass without a second
number, reply or page. `run_forever` repeats passes on a schedule until SIGTERM/Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TypeVar

import schedule
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, func, select
from tqdm import tqdm

from mailflow.app import App
from mailflow.batch_facts import BatchFacts, known
from mailflow.db import held, insert_new, is_deadlock, is_sqlite, lock_key, run_lock, transaction, turn
from mailflow.digest import is_digest_due, send_digest
from mailflow.errors import SourceError
from mailflow.files import write_atomically
from mailflow.interviews import OlderPages, pending_links, relink
from mailflow.models import InboundMessage, Interview, Publication
from mailflow.neighbours import present
from mailflow.notices import send_crossover_notices
from mailflow.privacy import purge_expired
from mailflow.process import Outcome, answer_numbered, identify, process_message
from mailflow.publishing import publish_all
from mailflow.reading import ReadAhead, Reading
from mailflow.scrub import redact_addresses
from mailflow.sending import BackgroundSender, send_all
from mailflow.states import IN_PROGRESS, FilingState, InboundState, now, transition

logger = logging.getLogger(__name__)

PROGRESS_FROM = 200
DECIDE_BATCH = 50
FILE_BATCH = 500
DECIDE_SECONDS = 0.25  # a batch holds the write lock (SQLite) and the decision lock: keep it short
ANSWER_SECONDS = 0.25  # ... or the turn on the cross-overs (PostgreSQL)
FETCH_BATCH = 100
FETCH_TURN = "mailflow-fetch"
FETCH_POLL_SECONDS = 0.05  # a worker that has run out while another fetches looks again this often
RELINK_BATCH = 200  # new interviews whose older pages are refreshed in one transaction (and turn)
RELINK_DEADLOCKS = 3  # times two workers may wait on each other before the rest waits for the next pass
FETCH_BATCH_BYTES = 20 * 1024 * 1024  # a few large messages make a batch too: memory stays flat
StopCheck = Callable[[], bool]


@dataclass
class PassReport:
    fetched: int = 0
    decided: Tally[str] = field(default_factory=Tally)
    sent: int = 0
    send_failures: int = 0
    published: int = 0
    publish_failures: int = 0
    withdrawn: int = 0
    filed: int = 0
    skipped_locked: bool = False

    def add_sent(self, sent: int, failed: int) -> None:
        self.sent, self.send_failures = self.sent + sent, self.send_failures + failed

    def summary(self) -> str:
        decided = ", ".join(f"{count} {state}" for state, count in sorted(self.decided.items())) or "none"
        return (
            f"fetched {self.fetched}; decided: {decided}; sent {self.sent}"
            f"{f' ({self.send_failures} waiting to retry or failed)' if self.send_failures else ''}; "
            f"published {self.published}"
            f"{f' ({self.publish_failures} waiting to retry or failed)' if self.publish_failures else ''}; "
            f"filed {self.filed}"
        )


def run_pass(app: App, should_stop: StopCheck = lambda: False) -> PassReport:
    """One full pass; returns what it did. Steps in order, each safe to interrupt."""
    report = PassReport()
    with pass_lock(app) as held:
        if not held:
            logger.info("another pass is running; this one steps aside")
            report.skipped_locked = True
            return report
        with present(app.workers_path):
            run_steps(app, report, should_stop)
        record_pass(app, report)
    logger.info("pass: %s", report.summary())
    return report


def run_steps(app: App, report: PassReport, should_stop: StopCheck) -> None:
    app.reload_templates()  # the host may have edited one since the last pass
    step(fetch, app, report, should_stop)
    app.recheck_crossovers()  # other processes may have changed interviews since the last pass
    sender = BackgroundSender(app)  # sends while the pass decides and publishes
    try:
        step(process_all, app, report, sender, should_stop)
        step(relink_older_pages, app)
        step(queue_scheduled_mail, app)
        step(publish, app, report, sender, should_stop)
    finally:
        step(sender.finish, should_stop)
        report.add_sent(sender.sent, sender.failed)
    step(send_the_rest, app, report, should_stop)
    step(file_all, app, report)
    step(purge_expired, app)


def step(action: Callable[..., object], *args: object) -> None:
    """Run one step of a pass. A bug in one step must not stop the others (a message that
    cannot be filed must not stop replies going out): log it and carry on. A database that
    cannot be used stops the pass, which resumes later."""
    try:
        action(*args)
    except SourceError as exc:
        logger.error("could not read the mailbox: %s", exc)
    except OperationalError:
        raise
    except Exception:
        logger.exception("the %s step failed; the rest of the pass goes on", getattr(action, "__name__", "?"))


def relink_older_pages(app: App) -> None:
    """The older pages related to the pass's new interviews, each refreshed once, before the
    pages go up; RELINK_BATCH new interviews per transaction. A batch that fails is gone
    through one new interview at a time; one that still fails waits for the next pass
    (logged) and does not hold up the others. Their replies have gone already."""
    stuck: set[int] = set()
    deadlocks = 0
    while True:
        numbers: list[int] = []
        try:
            with transaction(app.engine) as session:
                numbers = pending_links(session, RELINK_BATCH, stuck)
                if not numbers:
                    return
                relink(session, app, numbers)
        except OperationalError as exc:
            app.forget_crossovers()
            if not is_deadlock(exc):
                raise
            deadlocks += 1
            if deadlocks > RELINK_DEADLOCKS:
                logger.warning("the related links of older pages wait for the next pass (other workers held them)")
                return
            logger.info("two workers waited on each other; the older pages' links are refreshed again")
        except Exception:
            app.forget_crossovers()
            if not numbers:
                raise
            logger.warning("refreshing the links of older pages failed; trying each new interview alone")
            stuck.update(_relink_one_at_a_time(app, numbers))


def _relink_one_at_a_time(app: App, numbers: list[int]) -> list[int]:
    """Relink each new interview in a transaction of its own; returns those that failed."""
    failed = []
    for number in numbers:
        try:
            with transaction(app.engine) as session:
                relink(session, app, [number])
        except OperationalError:
            raise
        except Exception:
            app.forget_crossovers()
            logger.exception("interview %05d: its older related pages were not given a link to it; next pass", number)
            failed.append(number)
    return failed


def publish(app: App, report: PassReport, sender: BackgroundSender, should_stop: StopCheck) -> None:
    """Put what is due on the blog while the sender sends the last replies."""

    def hand_over_more() -> None:
        """Between batches of pages. Should it fail, the pages still go up and the listing
        is refreshed; the sender tries again as the pass ends."""
        try:
            sender.top_up()
        except Exception as exc:  # noqa: BLE001 - logged; finish() tries again and reports
            logger.warning("the next replies were not handed over while publishing (%s)", type(exc).__name__)

    report.published, report.publish_failures, report.withdrawn = publish_all(app, should_stop, hand_over_more)


def send_the_rest(app: App, report: PassReport, should_stop: StopCheck) -> None:
    """What the sender did not take: follow-ups written while publishing (a page's address),
    and anything a failed step left queued."""
    report.add_sent(*send_all(app, should_stop))


def record_pass(app: App, report: PassReport) -> None:
    """Note when the last pass finished, for `mailflow status`."""
    summary = {"finished_at": now().isoformat(), "summary": report.summary()}
    write_atomically(app.lock_path.with_name("last-pass.json"), json.dumps(summary))


def last_pass(app: App) -> dict[str, str] | None:
    path = app.lock_path.with_name("last-pass.json")
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def pass_lock(app: App) -> AbstractContextManager[bool]:
    """On SQLite one pass at a time (overlapping scheduled runs step aside); on PostgreSQL
    several workers run at once and row locks keep them apart."""
    return run_lock(app.lock_path) if is_sqlite(app.engine) else nullcontext(True)


def fetch(app: App, report: PassReport, should_stop: StopCheck) -> None:
    """Store what is new in the mailbox. One worker fetches at a time: the others would only
    download the same messages again. They decide what it stores meanwhile (process_all)."""
    with turn(app.engine, FETCH_TURN) as ours:
        if not ours:
            logger.info("another worker is fetching from the mailbox; this one decides what it stores")
            return
        _fetch(app, report, should_stop)


def _fetch(app: App, report: PassReport, should_stop: StopCheck) -> None:
    batch: list[dict[str, object]] = []
    batch_bytes = 0
    for incoming in app.source.fetch():
        row = InboundMessage(
            source_key=incoming.key, raw=incoming.raw, size=len(incoming.raw), arrived_at=incoming.arrived_at
        )
        batch.append(row.model_dump(exclude={"id"}))
        batch_bytes += len(incoming.raw)
        if len(batch) >= FETCH_BATCH or batch_bytes >= FETCH_BATCH_BYTES:
            report.fetched += _store(app, batch)
            batch, batch_bytes = [], 0
        if should_stop():
            break
    report.fetched += _store(app, batch)


def _store(app: App, batch: list[dict[str, object]]) -> int:
    """Insert the messages not seen before (by source key); one commit for the batch."""
    if not batch:
        return 0
    with transaction(app.engine) as session:
        return insert_new(session, InboundMessage, batch, key="source_key")


def process_all(app: App, report: PassReport, sender: BackgroundSender, should_stop: StopCheck) -> None:
    """Decide every waiting message, a batch per transaction, while a background sender
    sends the replies already decided. A batch is decided in turn (numbers follow arrival),
    then the numbered replies of the batch are answered (pages, cross-overs, replies) while
    another worker takes its turn; a worker waiting for its turn reads the next messages."""
    waiting = _waiting(app) or _received(app, should_stop)
    if not waiting:
        return
    # A progress bar for a big backlog, only for a person watching a terminal.
    progress = tqdm(total=waiting, unit="msg", disable=waiting < PROGRESS_FROM or not sys.stderr.isatty())
    reader, numbered = ReadAhead(app), Numbered()

    def count(states: list[str]) -> None:
        final = [state for state in states if state != InboundState.NUMBER_ASSIGNED]
        report.decided.update(final)
        progress.update(len(final))

    try:
        reader.read_in_background(waiting)  # a backlog: a second process reads ahead
        with progress:
            while not should_stop():
                try:
                    answered = answer_batch(app, sender, numbered, should_stop, anyones=False)
                    count(answered)
                    decided = decide_batch(app, sender, reader, numbered, should_stop, wait=False)
                    if decided is None and not reader.read_next():  # another worker has the turn
                        decided = decide_batch(app, sender, reader, numbered, should_stop, wait=True)
                    count(decided or [])
                    if not answered and decided == []:  # nothing left to decide: and a stopped worker's?
                        answered = answer_batch(app, sender, numbered, should_stop, anyones=True)
                        count(answered)
                except OperationalError as exc:
                    if not is_deadlock(exc):
                        raise
                    logger.info("two workers waited on each other; the batch is done again")
                    continue
                if not answered and decided == [] and not _received(app, should_stop):
                    break
    finally:
        reader.close()


def _waiting(app: App) -> int:
    with transaction(app.engine) as session:
        return session.exec(
            select(func.count()).select_from(InboundMessage).where(InboundMessage.state.in_(IN_PROGRESS))  # type: ignore[attr-defined]
        ).one()


def _received(app: App, should_stop: StopCheck) -> int:
    """Messages stored and not decided yet. While another worker is fetching (`fetch`) and
    none are, waits for the first it stores, or for it to finish (or for this one to be
    asked to stop): they are for this pass too."""
    while True:
        with transaction(app.engine) as session:
            fetching = held(session, FETCH_TURN)  # first: what it stored before letting go is counted next
            received = session.exec(
                select(func.count()).select_from(InboundMessage).where(InboundMessage.state == InboundState.RECEIVED)
            ).one()
        if received or not fetching or should_stop():
            return received
        time.sleep(FETCH_POLL_SECONDS)


Numbered = dict[int, Reading]
"""Messages this worker gave a number, as read, until answered: no second parse."""


def decide_batch(
    app: App, sender: BackgroundSender, reader: ReadAhead, numbered: Numbered, should_stop: StopCheck, *, wait: bool
) -> list[str] | None:
    """Decide the oldest waiting messages, up to DECIDE_BATCH or DECIDE_SECONDS' worth, in one
    transaction; returns their new states (none when nothing is left), or None when another
    worker has the turn and `wait` is False.

    Decisions are taken in arrival order, even with several workers: they take turns on a
    lock for the length of one batch, so numbers follow the order of arrival, which parallel
    deciding cannot promise. A complete reply gets its number here; its page, cross-overs
    and reply come after the turn (answer_batch). One commit per batch: each is a flush to disk."""
    try:
        with transaction(app.engine) as session:
            if not lock_key(session, "mailflow-decisions", wait=wait):
                return None
            sender.settle(session)
            batch = session.exec(
                select(InboundMessage)
                .where(InboundMessage.state == InboundState.RECEIVED)
                .order_by(InboundMessage.id)  # type: ignore[arg-type]
                .limit(DECIDE_BATCH)
                .with_for_update()  # not SKIP LOCKED: one being read ahead is waited for, numbers follow arrival
            ).all()
            reader.hand_over(session, batch[-1].id or 0 if batch else 0)
            readings: dict[int, Reading] = {}
            decided = as_one_unit(
                session, app, partial(_decide_rows, session, app, batch, reader, readings, should_stop)
            )
            for inbound, state in zip(batch[: len(decided)], decided, strict=True):
                if state == InboundState.NUMBER_ASSIGNED:
                    numbered[inbound.id or 0] = readings[inbound.id or 0]
            reader.put_back({inbound.id or 0: readings[inbound.id or 0] for inbound in batch[len(decided) :]})
    except Exception:
        app.forget_crossovers()  # it may hold interviews this transaction did not keep
        numbered.clear()
        raise
    sender.hand_over()
    return decided


def _decide_rows(
    session: Session,
    app: App,
    batch: Sequence[InboundMessage],
    reader: ReadAhead,
    readings: dict[int, Reading],
    should_stop: StopCheck,
    one_at_a_time: bool,
) -> list[str]:
    """Decide the batch in order, up to DECIDE_SECONDS' worth; each in a savepoint of its own
    if `one_at_a_time` (decide_one), else all in the caller's, with what the lookups ask
    asked once for the batch (batch_facts.py), flushed only where a message needs to see
    what the batch wrote before it (SeenInBatch). Returns the new states."""
    decided: list[str] = []
    for inbound in batch:
        if inbound.id not in readings:
            readings[inbound.id or 0] = reader.reading(inbound)
    read, seen = [readings[inbound.id or 0] for inbound in batch], SeenInBatch(app)
    facts = None if one_at_a_time or not read else BatchFacts.for_deciding(session, *seen.keys_of(read))
    deadline = time.monotonic() + DECIDE_SECONDS  # read first: what is read is decided
    for inbound, reading in zip(batch, read, strict=True):
        if decided and (time.monotonic() > deadline or should_stop()):
            break
        decide = partial(process_message, session, app, inbound, reading)
        if one_at_a_time:
            decided.append(decide_one(session, app, inbound, decide))
            continue
        first_time, flush = seen.note(reading)
        if flush:
            session.flush()
        with known(session, facts if first_time else None):
            decided.append(decide().state.value)
    return decided


def answer_batch(
    app: App, sender: BackgroundSender, numbered: Numbered, should_stop: StopCheck, *, anyones: bool
) -> list[str]:
    """Queue the pages, link the cross-overs and write the replies of messages given their
    number, up to DECIDE_BATCH or ANSWER_SECONDS' worth in one transaction; returns their new
    states. Workers take turns on the cross-overs (app.crossovers), not on the numbers.

    Those this worker numbered, as read (`numbered`); with `anyones`, the oldest any worker
    numbered and left (it stopped, or a pass before did). A worker that took another's the
    moment it had numbered them would read them again, and the other's reading would go."""
    answered: list[str] = []
    if not numbered and not anyones:
        return answered
    try:
        with transaction(app.engine) as session:
            query = (
                select(InboundMessage, Interview, Publication.state)
                .join(Interview, Interview.inbound_id == InboundMessage.id)  # type: ignore[arg-type]
                .outerjoin(Publication, Publication.interview_id == Interview.id)  # type: ignore[arg-type]
                .where(InboundMessage.state == InboundState.NUMBER_ASSIGNED)
            )
            if not anyones:
                query = query.where(InboundMessage.id.in_(sorted(numbered)[:DECIDE_BATCH]))  # type: ignore[union-attr]
            rows: Sequence[AnswerRow] = session.exec(
                query.order_by(InboundMessage.id)  # type: ignore[arg-type]
                .limit(DECIDE_BATCH)
                .with_for_update(skip_locked=True, of=InboundMessage)  # type: ignore[arg-type]
            ).all()
            if not rows:
                numbered.clear()  # any left were answered by another worker
                return answered
            sender.settle(session)
            if not app.settings.core.review:
                app.crossovers(session)  # the turn on the cross-overs, for the whole transaction
            readings = {inbound.id or 0: numbered.get(inbound.id or 0) for inbound, _, _ in rows}
            answered = as_one_unit(session, app, partial(_answer_rows, session, app, rows, readings, should_stop))
    except Exception:
        app.forget_crossovers()
        raise
    for inbound, _, _ in rows[: len(answered)]:
        numbered.pop(inbound.id or 0, None)
    sender.hand_over()
    return answered


AnswerRow = tuple[InboundMessage, Interview, str | None]
"""A message given its number, its interview, and its page's state (None: no page yet)."""


def _answer_rows(
    session: Session,
    app: App,
    rows: Sequence[AnswerRow],
    readings: dict[int, Reading | None],
    should_stop: StopCheck,
    one_at_a_time: bool,
) -> list[str]:
    """Answer the rows in order, up to ANSWER_SECONDS' worth; each in a savepoint of its own
    if `one_at_a_time` (decide_one), else all in the caller's. Returns the new states; the
    older pages related to the new interviews are kept for the pass's end. Nothing answering
    reads needs the batch's own writes flushed: what it needs of them (pages, replies) is
    known in memory."""
    answered: list[str] = []
    older = OlderPages()
    # As one unit nothing is flushed, and the replies queued so far are counted in memory:
    # the replies already sent to the batch's senders are asked once (batch_facts.py).
    senders = [inbound.sender_hash for inbound, _, _ in rows]
    facts = None if one_at_a_time else BatchFacts.for_answering(session, senders)
    if not one_at_a_time and not app.settings.core.review:  # their cross-overs, found together
        older.prepare(session, app, [interview for _, interview, page in rows if page is None])
    deadline = time.monotonic() + ANSWER_SECONDS
    with nullcontext() if one_at_a_time else session.no_autoflush, known(session, facts):
        for inbound, interview, page in rows:
            if answered and (time.monotonic() > deadline or should_stop()):
                break
            reading = readings[inbound.id or 0] or Reading.of(app, inbound.raw)
            readings[inbound.id or 0] = reading
            withdrawn = page is not None  # its page was taken down before it was written
            answer = partial(answer_numbered, session, app, inbound, interview, reading, older, withdrawn=withdrawn)
            if one_at_a_time:
                answered.append(decide_one(session, app, inbound, answer))
                if answered[-1] == InboundState.FAILED:
                    older.drop(interview.number)
            else:
                answered.append(answer().state.value)
    older.unprepare(session, app)
    older.keep_for_the_pass(session)
    return answered


T = TypeVar("T")


def as_one_unit(session: Session, app: App, run: Callable[[bool], T]) -> T:
    """Run a batch's messages as one unit first, `run(False)`: one savepoint and one flush for
    the batch, the cheapest by far. Should any message fail, that is undone and the batch
    run again a message at a time, `run(True)`, so the failure is recorded against that
    message alone (decide_one) and the others go on."""
    try:
        with session.begin_nested():
            return run(False)
    except OperationalError:
        raise
    except Exception as exc:  # noqa: BLE001 - run again one at a time, where it is recorded
        why = redact_addresses(f"{type(exc).__name__}: {exc}")[:200]  # no sender's address in the log
        logger.info("a message in the batch failed (%s); going through them one at a time", why)
        app.forget_crossovers()
        return run(True)


class SeenInBatch:
    """Senders and Message-IDs seen so far in a batch run as one unit. The lookups a message
    needs of earlier ones (an earlier copy, the sender's draft, interview or replies) are
    answered for the batch before it starts, or ask the database without flushing: when a
    sender or Message-ID comes again, those answers no longer hold for it, and the batch so
    far is flushed first if it has not been since. Other lookups go through the ORM, which
    flushes by itself. A message from the host (whose commands reach other people's rows)
    ends the batch's answers for every message after it."""

    def __init__(self, app: App) -> None:
        self.app, self.host = app, app.settings.core.host_address.lower()
        self.ever: set[str] = set()
        self.since_flush: set[str] = set()
        self.host_seen = self.host_last = False  # a message from the host: anywhere before, just before

    def keys_of(self, read: Sequence[Reading]) -> tuple[list[str], list[str]]:
        """The Message-IDs and senders (hashed) of the batch, as process_message records them."""
        identities = [identify(self.app, reading.mail) for reading in read]
        return [message_id for message_id, _ in identities], [sender for _, sender in identities]

    def note(self, reading: Reading) -> tuple[bool, bool]:
        """(the batch's answers hold for this message, the batch must be flushed before it)."""
        mail = reading.mail
        message_id, sender = identify(self.app, mail)
        keys = {f"from:{sender}", f"id:{message_id}"}
        from_host = mail.from_address == self.host
        first_time = keys.isdisjoint(self.ever) and not self.host_seen and not from_host
        flush = not keys.isdisjoint(self.since_flush) or self.host_last
        self.host_seen, self.host_last = self.host_seen or from_host, from_host
        self.ever |= keys
        self.since_flush = keys if flush else self.since_flush | keys
        return first_time, flush


def decide_one(session: Session, app: App, inbound: InboundMessage, decide: Callable[[], Outcome]) -> str:
    """Decide one message inside a savepoint, the failure boundary for one message: anything
    unexpected undoes that message alone and marks it failed, with the reason."""
    try:
        with session.begin_nested(), session.no_autoflush:
            return decide().state.value
    except OperationalError:
        raise  # the database itself is unavailable (locked, disk full): stop the pass, resume later
    except Exception as exc:
        logger.exception("message %s: failed", inbound.id)
        app.forget_crossovers()
        session.refresh(inbound)
        inbound.reason = redact_addresses(f"error: {type(exc).__name__}: {exc}")[:200]
        transition(inbound, InboundState.FAILED, reason=inbound.reason)
        return InboundState.FAILED.value


def queue_scheduled_mail(app: App) -> None:
    """The host's digest when it is due, and the weekly cross-over notes."""
    if is_digest_due(app, datetime.now().astimezone()):
        send_digest(app)
    send_crossover_notices(app)


def file_all(app: App, report: PassReport) -> None:
    """Move or mark the mailbox copy of every decided message, once, a batch per command:
    the batch's rows stay locked while their copies are filed, so two workers never move
    the same message. When a batch is refused, its messages are filed one by one, so one
    that cannot be filed (its folder gone, say) does not hold up the others."""
    stuck: set[int] = set()
    while True:
        with transaction(app.engine) as session:
            rows = session.exec(
                select(InboundMessage)
                .where(
                    InboundMessage.filing == FilingState.WAITING,
                    InboundMessage.state.not_in(IN_PROGRESS),  # type: ignore[attr-defined]
                    InboundMessage.id.not_in(stuck),  # type: ignore[union-attr]
                )
                .order_by(InboundMessage.id)  # type: ignore[arg-type]
                .limit(FILE_BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return
            filed = file_rows(app, rows)
            filed_ids = {row.id for row in filed}  # by id: comparing rows compares every field
            stuck.update(row.id or 0 for row in rows if row.id not in filed_ids)
            for row in filed:
                transition(row, FilingState.FILED, field="filing")
            report.filed += len(filed)


def file_rows(app: App, rows: Sequence[InboundMessage]) -> list[InboundMessage]:
    """File the rows' mailbox copies; returns the rows filed."""
    try:
        app.source.file([(row.source_key, row.state) for row in rows])
        return list(rows)
    except SourceError as exc:
        if len(rows) == 1:
            logger.warning("message %s: not filed yet (%s)", rows[0].id, exc)
            return []
    return [row for row in rows if file_rows(app, [row])]


def run_forever(app: App, poll_seconds: int) -> None:
    """Poll on a schedule until SIGTERM or Ctrl-C; the current message is finished first."""
    stop = {"requested": False}

    def request_stop(signum: int, _frame: object) -> None:
        logger.info("signal %s: finishing the current message, then stopping", signum)
        stop["requested"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def one_pass() -> None:
        try:
            run_pass(app, lambda: stop["requested"])
        except OperationalError as exc:
            logger.error("the database is unavailable (%s); trying again at the next poll", exc.orig)
        except Exception:
            logger.exception("the pass failed; trying again at the next poll")

    one_pass()
    # Push mode: a source that can wait for new mail (IMAP IDLE) wakes the worker at once; a
    # full pass still runs every poll_seconds for retries. Polling is the default and fallback.
    wait_for_mail = getattr(app.source, "wait_for_mail", None) if app.settings.incoming.flag("idle", False) else None
    if wait_for_mail is not None:
        try:
            idle = app.source.supports_idle()  # type: ignore[attr-defined]
        except SourceError as exc:
            logger.warning("could not ask the mail server about IDLE (%s); trying it anyway", exc)
            idle = True
        if idle:
            logger.info("waiting for new mail with IMAP IDLE; a full pass at least every %s s", poll_seconds)
            while not stop["requested"]:
                wait_for_mail(poll_seconds, lambda: stop["requested"])
                if not stop["requested"]:
                    one_pass()
            app.close()
            return
        logger.info("the mail server does not offer IDLE; checking every %s s instead", poll_seconds)
    job = schedule.Scheduler()
    job.every(poll_seconds).seconds.do(one_pass)
    while not stop["requested"]:
        job.run_pending()
        time.sleep(0.2)
    app.close()
