"""Reading a message: parsing it and finding its answers. Reading needs neither the database
nor a turn, so it is done ahead where it can be: a worker reads the next waiting messages
while another worker holds the decision lock (worker.decide_batch), and with a backlog a
second process reads the next batches while this one decides (background_reading.py).
"""

from __future__ import annotations

import logging

from sqlmodel import Session, select

from mailflow.answers import Answers
from mailflow.app import App
from mailflow.background_reading import BackgroundReader, HowToRead, ReadMessage, read_answers
from mailflow.db import transaction
from mailflow.models import InboundMessage
from mailflow.neighbours import spare_core
from mailflow.parsing import ParsedMail, parse_message
from mailflow.states import InboundState

logger = logging.getLogger(__name__)

READ_AHEAD = 20  # messages read per turn of waiting: a few turns' worth cover a batch
KEEP_AT_MOST = 200  # read messages waiting for their turn, at most: memory stays flat
BACKGROUND_FROM = 200  # a backlog this long is read in a second process (its start-up: ~0.1 s)
BACKGROUND_BATCH = 50  # messages per batch handed to the second process
BACKGROUND_DEPTH = 2  # batches handed over and not yet collected, at most
BACKGROUND_WAIT_SECONDS = 10.0  # a batch of 50 takes ~0.1 s; one this late: the child has stalled


def how_to_read(app: App) -> HowToRead:
    return HowToRead(app.questions, app.boilerplate, app.settings.core.max_answer_chars)


class Reading:
    """One message, parsed; its answers read when first asked for (most messages are replies
    with answers, but requests, comments and commands need none) unless read ahead."""

    def __init__(
        self, app: App, mail: ParsedMail, answers: Answers | None = None, scrubbed: dict[int, str] | None = None
    ) -> None:
        self.app, self.mail = app, mail
        self._read = (answers, scrubbed) if answers is not None and scrubbed is not None else None

    @classmethod
    def of(cls, app: App, raw: bytes) -> Reading:
        return cls(app, parse_message(raw))

    @property
    def answers(self) -> Answers:
        """The answers as found in the reply."""
        return self._answers_read()[0]

    @property
    def scrubbed(self) -> dict[int, str]:
        """The answers as they may be published: cut to the limit, identifying details removed."""
        return self._answers_read()[1]

    def _answers_read(self) -> tuple[Answers, dict[int, str]]:
        if self._read is None:
            self._read = read_answers(self.mail, how_to_read(self.app))
        return self._read


class ReadAhead:
    """Messages read before their turn, by inbound id. Messages are decided in arrival order,
    so when one is decided here, those read before it were another worker's: they go."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._read: dict[int, Reading] = {}
        self._background: BackgroundReader | None = None
        self._handed_up_to = 0  # the newest inbound id handed to the second process

    def read_in_background(self, waiting: int) -> None:
        """With a backlog of `waiting` messages and a core to spare, start a second process to
        read ahead. Without one (as many workers here as cores) it would only slow them."""
        if waiting >= BACKGROUND_FROM and self._background is None and spare_core(self.app.workers_path):
            try:
                self._background = BackgroundReader(how_to_read(self.app))
            except OSError as exc:  # no process to be had (memory, limits): read in turn, as for a few
                logger.warning("could not start a background reader (%s); reading each message in turn", exc)

    def hand_over(self, session: Session, deciding_up_to: int) -> None:
        """Keep the second process (if any) a few batches ahead of the decider: called at each
        turn, when the batch being decided ends at inbound id `deciding_up_to`. Messages of
        that batch not handed over yet (the first batch: the child is starting) are read here."""
        background = self._background
        if background is None or not background.working:
            return
        self._handed_up_to = max(self._handed_up_to, deciding_up_to)
        while background.pending < BACKGROUND_DEPTH and len(self._read) < KEEP_AT_MOST:
            rows = session.exec(
                select(InboundMessage.id, InboundMessage.raw)
                .where(InboundMessage.state == InboundState.RECEIVED, InboundMessage.id > self._handed_up_to)  # type: ignore[operator]
                .order_by(InboundMessage.id)  # type: ignore[arg-type]
                .limit(BACKGROUND_BATCH)
            ).all()
            if not rows:
                return
            self._handed_up_to = rows[-1][0] or 0
            background.submit([(inbound_id or 0, raw) for inbound_id, raw in rows])

    def close(self) -> None:
        if self._background is not None:
            self._background.close()
            self._background = None

    def reading(self, inbound: InboundMessage) -> Reading:
        """The message as read ahead (waiting for the second process if it has it), or read now."""
        inbound_id = inbound.id or 0
        for older in [read_id for read_id in self._read if read_id < inbound_id]:
            del self._read[older]
        background = self._background
        while inbound_id not in self._read and background and background.holds(inbound_id):
            self._keep(background.collect(timeout=BACKGROUND_WAIT_SECONDS))
        found = self._read.pop(inbound_id, None)
        return found if found is not None else Reading.of(self.app, inbound.raw)

    def put_back(self, readings: dict[int, Reading]) -> None:
        """Messages read for a batch but not decided in it (its time ran out): for the next."""
        self._read.update(readings)

    def _keep(self, read: list[ReadMessage]) -> None:
        for inbound_id, mail, answers, scrubbed in read:
            if answers is not None:  # otherwise read again in its turn, where a failure is recorded
                self._read[inbound_id] = Reading(self.app, mail, answers, scrubbed)

    def read_next(self) -> int:
        """Read the oldest waiting messages that no worker has taken and that are not read yet;
        returns how many were read (0: nothing left to read ahead: wait for the turn)."""
        if len(self._read) >= KEEP_AT_MOST:
            return 0
        with transaction(self.app.engine) as session:
            rows = session.exec(
                select(InboundMessage.id, InboundMessage.raw)
                .where(
                    InboundMessage.state == InboundState.RECEIVED,
                    InboundMessage.id.not_in(self._read),  # type: ignore[union-attr]
                )
                .order_by(InboundMessage.id)  # type: ignore[arg-type]
                .limit(READ_AHEAD)
                .with_for_update(skip_locked=True)  # those another worker is deciding now are not ours
            ).all()
        kept = 0
        for inbound_id, raw in rows:
            reading = Reading.of(self.app, raw)
            try:
                _ = reading.scrubbed
            except Exception:  # noqa: BLE001 - read again in its turn, where the failure is recorded
                continue
            self._read[inbound_id or 0] = reading
            kept += 1
        return kept
