"""Reading a message: parsing it and finding its answers. Reading needs neither the database
nor a turn, so a worker reads the next waiting messages while another worker holds the
decision lock (worker.decide_batch): the lock is then held for deciding only.
"""

from __future__ import annotations

from functools import cached_property

from sqlmodel import select

from mailflow.answers import Answers, extract_answers
from mailflow.app import App
from mailflow.db import transaction
from mailflow.models import InboundMessage
from mailflow.parsing import ParsedMail, parse_message
from mailflow.states import InboundState

READ_AHEAD = 20  # messages read per turn of waiting: a few turns' worth cover a batch
KEEP_AT_MOST = 200  # read messages waiting for their turn, at most: memory stays flat


class Reading:
    """One message, parsed; its answers found when first asked for (most messages are
    replies with answers, but requests, comments and commands need none)."""

    def __init__(self, app: App, raw: bytes) -> None:
        self.app = app
        self.mail: ParsedMail = parse_message(raw)

    @cached_property
    def answers(self) -> Answers:
        return extract_answers(self.mail, self.app.questions, self.app.boilerplate)


class ReadAhead:
    """Messages read before their turn, by inbound id. Messages are decided in arrival order,
    so when one is decided here, those read before it were another worker's: they go."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._read: dict[int, Reading] = {}

    def reading(self, inbound: InboundMessage) -> Reading:
        """The message as read ahead, or read now."""
        for older in [inbound_id for inbound_id in self._read if inbound_id < (inbound.id or 0)]:
            del self._read[older]
        found = self._read.pop(inbound.id or 0, None)
        return found if found is not None else Reading(self.app, inbound.raw)

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
            reading = Reading(self.app, raw)
            try:
                _ = reading.answers
            except Exception:  # noqa: BLE001 - read again in its turn, where the failure is recorded
                continue
            self._read[inbound_id or 0] = reading
            kept += 1
        return kept
