"""Reading a backlog in a second process: parsing a message, finding its answers and
scrubbing them need neither the database nor a turn, and took about a third of a single
worker's time on one core. With a backlog, a child process reads the messages next in line
while this one decides, so the two cores share the work.

The child is `python -P -m mailflow.background_reading`, not a multiprocessing child: it
imports only this module, parsing, answers and scrub (about 25 MB) however the worker was
started, it reads with this very package (-P: not whatever the current directory holds),
and it can be stopped outright should it stall. The two talk in pickles over the child's
stdin and a private copy of its stdout, one batch at a time. Small passes (the usual one or
two messages) never start it.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailflow.answers import Answers, extract_answers
from mailflow.parsing import ParsedMail, parse_message
from mailflow.scrub import scrub_answers

logger = logging.getLogger(__name__)

CHILD = [sys.executable, "-P", "-m", "mailflow.background_reading"]

ReadMessage = tuple[int, ParsedMail, Answers, dict[int, str]] | tuple[int, ParsedMail, None, None]
"""An inbound id, the message as parsed, its answers as found and as they may be published
(None: read again in its turn)."""


@dataclass(frozen=True)
class HowToRead:
    """What reading needs from the settings; the child gets it once."""

    questions: tuple[str, ...]
    boilerplate: tuple[str, ...]
    answer_limit: int


def read_answers(mail: ParsedMail, how: HowToRead) -> tuple[Answers, dict[int, str]]:
    """A message's answers as found, and as they may be published (cut to the limit,
    identifying details removed): the same whether read here, in the child, or ahead."""
    answers = extract_answers(mail, how.questions, how.boilerplate)
    return answers, scrub_answers(answers.found, how.answer_limit, mail.from_name, mail.from_address)


def read_messages(messages: Sequence[tuple[int, bytes]], how: HowToRead) -> list[ReadMessage]:
    """Parse each message and read its answers (in the child)."""
    read: list[ReadMessage] = []
    for inbound_id, raw in messages:
        mail = parse_message(raw)
        try:
            read.append((inbound_id, mail, *read_answers(mail, how)))
        except Exception:  # noqa: BLE001 - read again in its turn, where the failure is recorded
            read.append((inbound_id, mail, None, None))
    return read


def peak_memory_kb() -> int:
    """This process's peak resident memory (VmHWM; 0 where /proc is not there to say)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def serve() -> None:
    """The child: how to read first, then batches until None; its peak memory last. Replies go
    to a private copy of stdout: anything a library prints goes to stderr instead."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    requests = sys.stdin.buffer
    how = pickle.load(requests)
    while (batch := pickle.load(requests)) is not None:
        pickle.dump(read_messages(batch, how), replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()
    pickle.dump(peak_memory_kb(), replies)
    replies.flush()


class BackgroundReader:
    """The child, seen from the worker: batches handed over in id order come back in the same
    order. Should the child stop or stall, the messages are read in their turn, as without
    it; nothing is lost."""

    def __init__(self, how: HowToRead) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)  # importable however this one was started
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH", "")]))
        # Its own session: Ctrl-C at the worker's terminal is for the worker, which stops the child.
        self._child = subprocess.Popen(CHILD, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
                                       env={**os.environ, "PYTHONPATH": path})  # fmt: skip
        self._pending: deque[range] = deque()  # the inbound ids of each batch handed over, oldest first
        self._requests: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._replies: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stopped_because = ""
        # Two threads move the pickles, so the worker never waits on a full pipe (the child
        # takes a batch only when done with the one before), and neither does the child.
        threading.Thread(target=self._give_requests, name="mailflow-reader-requests", daemon=True).start()
        threading.Thread(target=self._take_replies, name="mailflow-reader-replies", daemon=True).start()
        self._requests.put(how)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def working(self) -> bool:
        return not self._stopped_because

    def holds(self, inbound_id: int) -> bool:
        """Whether a batch handed over and not collected yet has this message."""
        return any(inbound_id in ids for ids in self._pending)

    def submit(self, messages: Sequence[tuple[int, bytes]]) -> None:
        """Hand over a batch of (inbound id, raw) in ascending id order."""
        if self.working:
            self._requests.put(list(messages))
            self._pending.append(range(messages[0][0], messages[-1][0] + 1))

    def collect(self, timeout: float | None = None) -> list[ReadMessage]:
        """What the child has read so far, oldest batch first. With a `timeout`, waits up to
        that long for the oldest batch still pending; past it the child is given up on."""
        read: list[ReadMessage] = []
        while self._pending:
            try:
                reply = (
                    self._replies.get(timeout=timeout)
                    if timeout is not None and not read
                    else self._replies.get_nowait()
                )
            except queue.Empty:
                if timeout is not None and not read:
                    self._stop(f"a batch took over {timeout:.0f} s")
                break
            if not isinstance(reply, list):
                self._stop(f"it ended: {reply}")
                break
            self._pending.popleft()
            read.extend(reply)
        return read

    def close(self) -> None:
        """Stop the child; logs its peak memory (the memory benchmark adds it to the worker's)."""
        if self.working:
            self._requests.put(None)
            try:
                while isinstance(reply := self._replies.get(timeout=10), list):
                    pass  # batches handed over and not needed after all
                if isinstance(reply, int):
                    logger.info("background reader: peak memory %d kB", reply, extra={"peak_kb": reply})
            except queue.Empty:
                pass
        self._stop("")

    def _give_requests(self) -> None:
        assert self._child.stdin is not None
        try:
            while True:
                request = self._requests.get()
                pickle.dump(request, self._child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self._child.stdin.flush()
                if request is None:
                    return
        except (OSError, ValueError):  # it has gone (or was stopped): its replies end, which says so
            return

    def _take_replies(self) -> None:
        assert self._child.stdout is not None
        try:
            while True:
                self._replies.put(pickle.load(self._child.stdout))
        except Exception as exc:  # noqa: BLE001 - EOF: it ended (or died); the collector is told
            self._replies.put(f"{type(exc).__name__}, exit status {self._child.poll()}")

    def _stop(self, why: str) -> None:
        """Stop the child for `why` ('' when the pass is over); the rest is read in turn.
        Never raises: whatever state the pipes are in, the pass goes on without the child."""
        if why and self.working:
            logger.warning("the background reader stopped (%s); messages are read in their turn instead", why)
        self._stopped_because = why or "closed"
        self._pending.clear()
        self._requests.put(None)  # the thread handing over requests ends (unless stuck on the pipe: see below)
        if self._child.poll() is None:
            self._child.kill()  # it holds nothing that is not kept elsewhere: the rows are in the database
        self._child.wait()
        for pipe in (self._child.stdin, self._child.stdout):
            try:
                if pipe is not None:
                    pipe.close()  # a stuck write ends with an error in its thread, which then ends
            except OSError:  # unwritten bytes for a child that is gone
                pass


if __name__ == "__main__":
    serve()
