"""Reading a backlog in a second process: parsing a message and finding its answers need
neither the database nor a turn, and take about a third of a single worker's time on one
core. With a backlog, a child process reads the messages next in line while this one
decides, so the two cores share the work. The child imports only this module, parsing and
answers (about 25 MB); small passes (the usual one or two messages) never start it.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from mailflow.answers import Answers, extract_answers
from mailflow.parsing import ParsedMail, parse_message

logger = logging.getLogger(__name__)

ReadMessage = tuple[int, ParsedMail, Answers | None]
"""An inbound id, the message as parsed, and its answers (None: read again in its turn)."""


def read_messages(
    messages: Sequence[tuple[int, bytes]], questions: tuple[str, ...], boilerplate: tuple[str, ...]
) -> list[ReadMessage]:
    """Runs in the child: parse each message and find its answers."""
    read: list[ReadMessage] = []
    for inbound_id, raw in messages:
        mail = parse_message(raw)
        try:
            answers: Answers | None = extract_answers(mail, questions, boilerplate)
        except Exception:  # noqa: BLE001 - found again in its turn, where the failure is recorded
            answers = None
        read.append((inbound_id, mail, answers))
    return read


def peak_memory_kb() -> int:
    """Runs in the child: its peak resident memory (VmHWM), for the memory benchmark's log."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class BackgroundReader:
    """A child process reading batches of messages ahead of the decider. Should it stop or
    stall, the messages are read in their turn, as without a child; nothing is lost."""

    def __init__(self, questions: tuple[str, ...], boilerplate: tuple[str, ...]) -> None:
        # spawn, not fork: the parent may have threads (a sender, a progress bar), and a fresh
        # interpreter holds only what reading needs.
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self._questions, self._boilerplate = questions, boilerplate
        self._pending: deque[tuple[range, Future[list[ReadMessage]]]] = deque()  # by inbound ids
        self._broken = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def working(self) -> bool:
        return not self._broken

    def holds(self, inbound_id: int) -> bool:
        """Whether a batch handed over and not collected yet has this message."""
        return any(inbound_id in ids for ids, _ in self._pending)

    def submit(self, messages: Sequence[tuple[int, bytes]]) -> None:
        """Hand over a batch of (inbound id, raw) in ascending id order."""
        ids = range(messages[0][0], messages[-1][0] + 1)
        try:
            self._pending.append((ids, self._pool.submit(read_messages, messages, self._questions, self._boilerplate)))
        except BrokenProcessPool:
            self._stopped("it could not take more work")

    def collect(self, timeout: float | None = None) -> list[ReadMessage]:
        """What the child has read so far, oldest batch first. With a `timeout`, waits up to
        that long for the oldest batch still pending; past it the child is given up on."""
        read: list[ReadMessage] = []
        if timeout is not None and self._pending:
            try:
                self._pending[0][1].result(timeout=timeout)
            except TimeoutError:
                self._stopped(f"a batch took over {timeout:.0f} s")
            except Exception:  # noqa: BLE001 - reported below, with the others
                pass
        while self._pending and self._pending[0][1].done():
            _, future = self._pending.popleft()
            try:
                read.extend(future.result())
            except Exception as exc:  # noqa: BLE001 - the child died (out of memory?): read in turn instead
                self._stopped(f"{type(exc).__name__}: {exc}")
        return read

    def _stopped(self, why: str) -> None:
        logger.warning("the background reader stopped (%s); messages are read in their turn instead", why)
        self._pending.clear()
        self._broken = True

    def close(self) -> None:
        """Stop the child; logs its peak memory (the memory benchmark adds it to the worker's)."""
        if self._broken:  # it may be stuck on a message: do not wait for it
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in (getattr(self._pool, "_processes", None) or {}).values():
                process.terminate()  # no public way to stop a busy child before Python 3.14
            return
        try:
            peak = self._pool.submit(peak_memory_kb).result(timeout=10)
            logger.info("background reader: peak memory %d kB", peak, extra={"peak_kb": peak})
        except Exception:  # it may be gone already; nothing is lost either way
            logger.debug("background reader: no peak memory reported", exc_info=True)
        self._pool.shutdown(wait=True, cancel_futures=True)
