"""Where a pass spends its time, per message: one `run_pass` over N generated replies in a
local Maildir (SQLite, static site, Maildir outbox: no servers), with wall-clock timers
around the functions that matter and around SQLAlchemy's execute/flush/get.

    .venv/bin/python -m benchmarks.breakdown [N] [--postgres]   # N = 300 by default

--postgres uses a fresh database on MAILFLOW_TEST_POSTGRES_URL (from var/services/env).

Timers nest (process_message includes link_crossovers, which includes some SA.execute),
so the column does not add up; it shows what to look at, with less distortion than a
profiler's per-call overhead. Not part of the benchmark table.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from benchmarks import corpus
from mailflow import worker
from mailflow.app import build_app
from mailflow.config import load_settings
from mailflow.sources.delivery import deliver_to_maildir
from mailflow.testing import fresh_postgres_database, make_settings

TIMED = {
    "mailflow.worker": ["process_all", "decide_batch", "process_message", "send_and_publish", "file_all"],
    "mailflow.process": ["parse_message", "_is_duplicate", "classify"],
    "mailflow.interviews": [
        "extract_answers", "scrub_answer", "_same_interview", "allocate_number", "link_crossovers", "reply_to",
        "interview_confirmed_in",
    ],
    "mailflow.replies": ["compose", "replies_today"],
    "mailflow.publishing": ["take", "record_publication"],
}  # fmt: skip


def timed(spent: Counter[str], label: str, function: Callable[..., object]) -> Callable[..., object]:
    def timer(*args: object, **kwargs: object) -> object:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - started

    return timer


def main(count: int, database: str = "sqlite:///db/mailflow.db") -> None:
    folder = Path(tempfile.mkdtemp(prefix="mailflow-breakdown-"))
    app = build_app(load_settings(make_settings(folder, database=database)))
    for raw in corpus.replies("breakdown", count):
        deliver_to_maildir(app.settings.incoming.path("path"), raw)
    spent: Counter[str] = Counter()
    for module_name, names in TIMED.items():
        module = importlib.import_module(module_name)
        for name in names:
            setattr(module, name, timed(spent, name, getattr(module, name)))
    for method in ("execute", "flush", "get"):
        setattr(Session, method, timed(spent, f"SQLAlchemy {method}", getattr(Session, method)))
    started = time.perf_counter()
    report = worker.run_pass(app)
    total = time.perf_counter() - started
    print(f"{report.summary()}\npass: {total:.2f} s, {total / count * 1000:.1f} ms per message\n")
    print("| where | ms per message |\n|---|---|")
    for label, seconds in spent.most_common():
        print(f"| {label} | {seconds / count * 1000:.2f} |")
    app.close()


if __name__ == "__main__":
    size = int(next((arg for arg in sys.argv[1:] if arg.isdigit()), "300"))
    if "--postgres" in sys.argv:
        with fresh_postgres_database(os.environ["MAILFLOW_TEST_POSTGRES_URL"]) as url:
            main(size, url)
    else:
        main(size)
