"""Latency in push mode: `mailflow run` with `[incoming] idle = yes` as a subprocess; complete
replies APPENDed one at a time; the time from the APPEND to the reply at the SMTP sink.

The floor is measured alongside, for the very same APPENDs: a bare imapclient connection
idling on the same folder records when Dovecot announces each message (EXISTS). No
worker can answer before the server tells it about the mail.
"""

from __future__ import annotations

import functools
import math
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchmarks import corpus
from benchmarks.servers import ROOT, Servers
from mailflow.testing import wait_until

GAP_SECONDS = 0.5  # between a reply arriving and the next APPEND: the worker is back in IDLE


@dataclass
class Latencies:
    push: list[float]  # APPEND -> reply at the sink
    announced: list[float]  # APPEND -> EXISTS at a bare idling client
    cold: float  # the first message after start-up, not counted (lazy imports, templates compiled)

    @property
    def median(self) -> float:
        return statistics.median(self.push)

    @property
    def p95(self) -> float:
        return percentile(self.push, 95)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


class Idler(threading.Thread):
    """A bare IDLE client: puts the monotonic time of every EXISTS it hears into `seen`.
    (Moving messages out of the folder gives EXPUNGE, not EXISTS: one EXISTS per APPEND.)"""

    def __init__(self, servers: Servers, folder: str) -> None:
        super().__init__(daemon=True)
        self.client = servers.imap()
        self.client.select_folder(folder, readonly=True)
        self.seen: queue.Queue[float] = queue.Queue()
        self.stop = threading.Event()

    def run(self) -> None:
        self.client.idle()
        while not self.stop.is_set():
            for response in self.client.idle_check(timeout=0.2):
                if isinstance(response, tuple) and len(response) > 1 and response[1] == b"EXISTS":
                    self.seen.put(time.monotonic())
        self.client.idle_done()
        self.client.logout()


def measure(servers: Servers, workdir: Path, count: int) -> Latencies:
    folder = servers.fresh_folder()
    tag = f"l{uuid.uuid4().hex[:8]}"
    settings = servers.settings_ini(workdir / tag, imap_folder=folder, incoming="idle = yes")
    log_path = settings.parent / "worker.log"
    log = open(log_path, "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "mailflow.cli", "--config", str(settings), "run"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    idler = Idler(servers, folder)
    try:
        if not wait_until(lambda: b"IMAP IDLE" in log_path.read_bytes(), timeout=60, step=0.05):
            raise RuntimeError(f"the worker never went into IDLE; see {log_path}")
        idler.start()
        time.sleep(1.0)
        push, announced = [], []
        with servers.imap() as appender:
            for index in range(count + 1):
                raw, recipient = corpus.reply(tag, index), corpus.address(tag, index)
                offset = servers.envelopes_size()
                started = time.monotonic()
                appender.append(folder, raw)
                arrived = wait_until(functools.partial(_arrived, servers, offset, recipient), timeout=30, step=0.005)
                if not arrived:
                    raise AssertionError(f"no reply for message {index} within 30 s; see {log_path}")
                push.append(time.monotonic() - started)
                announced.append(idler.seen.get(timeout=10) - started)
                time.sleep(GAP_SECONDS)
        return Latencies(push[1:], announced[1:], push[0])
    finally:
        idler.stop.set()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
        idler.join(timeout=5)
        servers.drop_folders(folder)


def _arrived(servers: Servers, offset: int, recipient: str) -> bool:
    return any(recipient in rcpts for _, rcpts in servers.recipients_since(offset))
