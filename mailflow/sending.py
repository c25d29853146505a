"""The send step: queued emails are handed to the outbox, each exactly as it was rendered.

Two ways, one outcome. `send_all` sends what is due, one row at a time, each locked while it
is handed over. `BackgroundSender` does the same while the pass is still deciding: the mail
server's time, most of what a reply costs, then overlaps with ours.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import bindparam, update
from sqlmodel import Session, col, select

from mailflow.app import App
from mailflow.db import claim, lease_until, transaction
from mailflow.models import OutboxItem
from mailflow.outbox import Outbox, OutgoingMail, connections, make_outbox
from mailflow.retries import Failure, attempt, due_ids, record_failure
from mailflow.states import OutboxState, now, transition

logger = logging.getLogger(__name__)

HAND_OVER_BATCH = 100  # emails in flight at most: 100 at 3 s each still go well within a lease


def send_all(app: App, should_stop: Callable[[], bool] = lambda: False) -> tuple[int, int]:
    """Send every due email over one outbox connection; returns (sent, not sent)."""
    sent = failed = 0
    try:
        for item_id in due_ids(app, OutboxItem, OutboxState.QUEUED):
            if should_stop():
                break
            outcome = send_one(app, item_id)
            if outcome is True:
                sent += 1
            elif outcome is False:
                failed += 1
    finally:
        app.outbox.close()
    return sent, failed


def send_one(app: App, item_id: int) -> bool | None:
    """Send one queued email; on failure record the error and when to try again. None when
    another worker has it (or it is already sent): not ours to count.

    The row stays locked while it is handed over, so two workers never send it twice; a
    crash before it is marked sent leaves it queued, and it goes again with the same bytes.
    """
    with transaction(app.engine) as session:
        due = (OutboxItem.state == OutboxState.QUEUED, OutboxItem.next_attempt_at <= now())  # type: ignore[operator]
        item = claim(session, OutboxItem, item_id, *due)
        if item is None:
            return None
        outcome = attempt(lambda: app.outbox.send(outgoing(app, item)), f"outbox {item_id}")
        record_outcome(item, outcome)
    return not isinstance(outcome, Failure)


class Queued(Protocol):
    """What sending needs of a queued email: an OutboxItem, or a row of its columns."""

    id: int | None
    message_id: str
    recipient: str
    raw: bytes


def outgoing(app: App, item: Queued) -> OutgoingMail:
    return OutgoingMail(item.id or 0, item.message_id, app.settings.core.from_address, (item.recipient,), item.raw)


def record_outcome(item: OutboxItem, outcome: object) -> None:
    if isinstance(outcome, Failure):
        record_failure(item, outcome)
        logger.warning("outbox %s: not sent (%s)", item.id, item.last_error)
    else:
        transition(item, OutboxState.SENT)


_LEASABLE = (
    select(OutboxItem.id, OutboxItem.message_id, OutboxItem.recipient, OutboxItem.raw)
    .where(
        OutboxItem.state == OutboxState.QUEUED,
        OutboxItem.next_attempt_at <= bindparam("now"),  # type: ignore[arg-type]
        OutboxItem.id > bindparam("after"),  # type: ignore[operator]
    )
    .order_by(OutboxItem.id)  # type: ignore[arg-type]
    .limit(bindparam("room"))
    .with_for_update(skip_locked=True)
)
_LEASE = (
    update(OutboxItem)
    .where(OutboxItem.id.in_(bindparam("ids", expanding=True)))  # type: ignore[union-attr]
    .values(next_attempt_at=bindparam("until"))
)
_RECORD_SENT = (
    update(OutboxItem)
    .where(
        OutboxItem.id.in_(bindparam("ids", expanding=True)),  # type: ignore[union-attr]
        col(OutboxItem.state) == OutboxState.QUEUED,
    )
    .values(state=OutboxState.SENT.value, updated_at=bindparam("now"))
    .returning(col(OutboxItem.id))
)


class BackgroundSender:
    """Sends on a thread of its own while the pass decides the next messages.

    The thread only talks to the mail server. The pass leases due emails inside its own
    transactions (`settle`), hands them over once that commits (`hand_over`), and records
    what the thread reports in its next transaction: no extra commits, no second writer on
    SQLite. A lease keeps other workers off an email in flight; if this worker dies before
    the outcome is recorded, the email goes again, with the same bytes and Message-ID, once
    the lease runs out.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self.sent = self.failed = 0
        self._leased: list[OutgoingMail] = []  # leased in the open transaction, handed over after it
        self._handed_up_to = 0  # rows are leased in id order; this one and below are handed over
        self._in_flight = 0  # handed over, no outcome back yet
        # Outcomes back from the thread, until a committed transaction holds them: a rolled-back
        # one records them again next time, rather than leaving sent mail queued.
        self._outcomes: dict[int, object] = {}
        self._recording: set[int] = set()
        self._todo: queue.SimpleQueue[OutgoingMail | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[int, object]] = queue.SimpleQueue()
        settings = app.settings
        extra = [make_outbox(settings.outgoing, settings.incoming) for _ in range(connections(settings.outgoing) - 1)]
        self._threads = [
            threading.Thread(target=self._send, args=(outbox,), name=f"mailflow-sender-{n}", daemon=True)
            for n, outbox in enumerate([app.outbox, *extra])
        ]
        for thread in self._threads:
            thread.start()

    def settle(self, session: Session) -> None:
        """Within the pass's transaction: record what was sent, lease what is due next. No
        more than HAND_OVER_BATCH are ever in flight, so each goes well within its lease."""
        self._record(session)
        room = HAND_OVER_BATCH - self._in_flight
        # As plain statements: this runs for every batch of a backlog, and the rows' bytes
        # are all it needs of them.
        rows = (
            session.connection()
            .execute(_LEASABLE, {"now": now(), "after": self._handed_up_to, "room": max(room, 0)})
            .all()
        )
        if rows:
            until = lease_until(self.app.engine)
            session.connection().execute(_LEASE, {"ids": [row.id for row in rows], "until": until})
        self._leased = [outgoing(self.app, row) for row in rows]  # type: ignore[arg-type]

    def hand_over(self) -> None:
        """After the transaction that leased them (and recorded outcomes) committed: count what
        it recorded, and start sending what it leased."""
        for outbox_id in self._recording:
            if isinstance(self._outcomes.pop(outbox_id), Failure):
                self.failed += 1
            else:
                self.sent += 1
        self._recording = set()
        for mail in self._leased:
            self._todo.put(mail)
            self._handed_up_to = max(self._handed_up_to, mail.outbox_id)
        self._in_flight += len(self._leased)
        self._leased = []

    def top_up(self) -> int:
        """In a transaction of its own: record what was sent, hand over what is due next.
        Returns how many were handed over."""
        with transaction(self.app.engine) as session:
            self.settle(session)
        leased = len(self._leased)
        self.hand_over()
        return leased

    def finish(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Send everything still due, HAND_OVER_BATCH at a time; wait until everything handed
        over is sent, and record it. Asked to stop (or failing), it leases nothing more and
        drops what the threads have not begun: those stay queued, and go once their lease
        runs out."""
        try:
            while not should_stop():
                leased = self.top_up()
                if not self._in_flight:
                    break
                # Down to half a lease's worth while more is due; when nothing more was, all
                # of them: each turn of this loop waits for at least one email.
                self._collect(until=HAND_OVER_BATCH // 2 if leased else 0)
        except BaseException:
            self._stop_threads()
            try:  # what was sent, even after a failure; the failure is what the pass reports
                self._record_sent()
            except Exception as exc:  # noqa: BLE001 - those emails stay queued and go again
                logger.warning("what was sent could not be recorded (%s); it goes again later", type(exc).__name__)
            raise
        self._stop_threads()
        self._record_sent()

    def _record_sent(self) -> None:
        with transaction(self.app.engine) as session:
            self._record(session)
        self.hand_over()

    def _stop_threads(self) -> None:
        """Drop what no thread has begun (in flight no more), and anything leased in a
        transaction that did not commit, then end the threads."""
        self._leased = []
        while True:
            try:
                mail = self._todo.get_nowait()
            except queue.Empty:
                break
            if mail is not None:
                self._in_flight -= 1
        for _ in self._threads:
            self._todo.put(None)
        for thread in self._threads:
            thread.join()

    def _collect(self, until: int | None = None) -> None:
        """Take the threads' outcomes; with `until`, wait until no more than that are in flight."""
        while self._in_flight:
            try:
                wait = until is not None and self._in_flight > until
                outbox_id, outcome = self._done.get(block=wait)
            except queue.Empty:
                break
            self._outcomes[outbox_id] = outcome
            self._in_flight -= 1

    def _record(self, session: Session) -> None:
        self._collect()
        self._recording = set()
        if not self._outcomes:
            return
        # Sent, the usual outcome: one statement for them all. Only those still queued are
        # ours to record (another worker may have sent one once its lease ran out).
        sent = {outbox_id for outbox_id, outcome in self._outcomes.items() if not isinstance(outcome, Failure)}
        if sent:
            found = session.connection().execute(_RECORD_SENT, {"ids": sorted(sent), "now": now()}).scalars()
            self._recording.update(outbox_id for outbox_id in found if outbox_id is not None)
            logger.info("outbox: %d email(s) sent", len(self._recording))
        failed = [outbox_id for outbox_id in self._outcomes if outbox_id not in sent]
        if failed:
            items = session.exec(
                select(OutboxItem).where(OutboxItem.id.in_(failed)).with_for_update()  # type: ignore[union-attr]
            ).all()
            for item in items:
                if item.state == OutboxState.QUEUED:
                    record_outcome(item, self._outcomes[item.id or 0])
                    self._recording.add(item.id or 0)
        # Rows no longer queued (or gone) need no record: let them go.
        for outbox_id in set(self._outcomes) - self._recording:
            del self._outcomes[outbox_id]

    def _send(self, outbox: Outbox) -> None:
        try:
            while (mail := self._todo.get()) is not None:
                outcome = attempt(lambda: outbox.send(mail), f"outbox {mail.outbox_id}")
                self._done.put((mail.outbox_id, outcome))
        finally:
            outbox.close()
