"""A backlog of complete replies waiting in Dovecot, drained by `mailflow run --once`.

Used by three benchmarks: throughput against the floor (1), peak memory (4) and two
workers on PostgreSQL (6). Each run gets a fresh IMAP folder, a fresh settings folder
and database; the workers are `benchmarks.child` processes, started together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import IO

import mailparser

from benchmarks import corpus
from benchmarks.servers import ROOT, Servers, fresh_postgres_database
from mailflow.app import build_app
from mailflow.config import load_settings

FLOOR_FETCH_CHUNK = 500


@dataclass
class Drain:
    """One drained backlog: wall time until every worker exited, and what each reported."""

    count: int
    seconds: float
    workers: list[dict] = field(default_factory=list)
    replies_at_sink: int = 0
    busy_cores: float = 0.0  # the machine's cores kept busy on average, all processes together

    @property
    def peak_mb(self) -> float:
        return max(worker["peak_mb"] for worker in self.workers)

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def seed_backlog(servers: Servers, count: int, tag: str) -> str:
    folder = servers.fresh_folder()
    servers.seed(folder, corpus.replies(tag, count))
    return folder


def drain(
    servers: Servers,
    workdir: Path,
    count: int,
    *,
    workers: int = 1,
    postgres: bool = False,
    profile: Path | None = None,
    seeded: tuple[str, str] | None = None,
) -> Drain:
    """Run `workers` workers at once over `count` replies (seeded now, or the (folder, tag)
    given); check every reply reached the sink; delete the folders afterwards. All workers
    share one settings file, as workers of one installation do (one site, one secret)."""
    folder, tag = seeded or _seed_new(servers, count)
    try:
        if postgres:
            with fresh_postgres_database(servers) as url:
                return _run(servers, workdir, folder, tag, count, workers, url, profile)
        return _run(servers, workdir, folder, tag, count, workers, "sqlite:///db/mailflow.db", profile)
    finally:
        servers.drop_folders(folder)


def _seed_new(servers: Servers, count: int) -> tuple[str, str]:
    tag = f"b{uuid.uuid4().hex[:8]}"
    return seed_backlog(servers, count, tag), tag


def _run(
    servers: Servers, workdir: Path, folder: str, tag: str, count: int, workers: int, database: str,
    profile: Path | None,
) -> Drain:  # fmt: skip
    offset = servers.envelopes_size()
    settings = servers.settings_ini(workdir / tag, imap_folder=folder, database=database)
    if not database.startswith("sqlite"):
        # Migrate once before the workers start, as a deployment would: workers that start
        # together on a new PostgreSQL database race in Alembic (both CREATE alembic_version).
        build_app(load_settings(settings)).close()
    result = run_children([settings] * workers, profile)
    result.count = count
    result.replies_at_sink = sum(
        1 for _, rcpts in servers.recipients_since(offset) for r in rcpts if r.startswith(f"{tag}-")
    )
    if result.replies_at_sink != count:
        raise AssertionError(f"{result.replies_at_sink} replies reached the sink, expected {count}: {result.workers}")
    return result


def run_children(settings: list[Path], profile: Path | None = None) -> Drain:
    """Start one child per settings file, wait until all have imported, start them together."""
    children: list[tuple[subprocess.Popen[str], IO[bytes]]] = []
    for path in settings:
        # Each worker keeps its own IMAP UID state, as a worker on another machine would:
        # workers sharing one state_file race on its temporary file (ImapSource UidState._save
        # uses one fixed .tmp name) and a pass can end with FileNotFoundError.
        env = {**os.environ, "MAILFLOW_INCOMING_STATE_FILE": f"db/imap-state-{len(children)}.json"}
        command = [sys.executable, "-m", "benchmarks.child", str(path)]
        if profile is not None and not children:
            command += ["--profile", str(profile)]
        log = open(path.parent / f"worker{len(children)}.log", "wb")
        children.append((subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=log, text=True, env=env), log))  # fmt: skip
    for child, _ in children:
        assert child.stdout is not None
        line = child.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"worker did not start: {line!r}; see {settings[0].parent}/worker*.log")
    started, busy_before = time.perf_counter(), cpu_jiffies()
    for child, _ in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    reports = []
    for child, child_log in children:
        out, _ = child.communicate(timeout=900)
        child_log.close()
        if child.returncode != 0:
            raise RuntimeError(f"worker failed ({child.returncode}); see {settings[0].parent}/worker*.log")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    busy, total = (after - before for after, before in zip(cpu_jiffies(), busy_before, strict=True))
    return Drain(count=0, seconds=time.perf_counter() - started, workers=reports,
                 busy_cores=(os.cpu_count() or 1) * busy / max(total, 1))  # fmt: skip


def cpu_jiffies() -> tuple[int, int]:
    """(busy, all) time of the machine's cores so far (/proc/stat; (0, 0) where it is not there).
    Busy counts everything on the machine: the workers, their servers, and anyone else."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            values = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


# -- the floor ----------------------------------------------------------------------------


@dataclass
class Floor:
    fetch: float
    parse: float
    send: float

    @property
    def seconds(self) -> float:
        return self.fetch + self.parse + self.send


def floor(servers: Servers, folder: str, count: int) -> Floor:
    """What any program must do for this backlog: fetch it in batches, parse each message
    with mail-parser, send as many small messages over one SMTP connection."""
    started = time.perf_counter()
    with servers.imap() as client:
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        raws: list[bytes] = []
        for start in range(0, len(uids), FLOOR_FETCH_CHUNK):
            data = client.fetch(uids[start : start + FLOOR_FETCH_CHUNK], [b"BODY.PEEK[]"])
            raws.extend(item[b"BODY[]"] for item in data.values())
    fetched = time.perf_counter()
    assert len(raws) == count, f"fetched {len(raws)} of {count}"
    for raw in raws:
        mailparser.parse_from_bytes(raw)
    parsed = time.perf_counter()
    tag = f"f{uuid.uuid4().hex[:8]}"
    client = servers.smtp()
    for index in range(count):
        message = EmailMessage()
        message["From"] = "jobs@example.test"
        message["To"] = corpus.address(tag, index)
        message["Subject"] = "Your interview number"
        message.set_content(f"Your number is {index + 1:05d}.\n")
        client.sendmail("jobs@example.test", [corpus.address(tag, index)], message.as_bytes())
    client.quit()
    sent = time.perf_counter()
    return Floor(fetch=fetched - started, parse=parsed - fetched, send=sent - parsed)
