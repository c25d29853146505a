"""Where a pass spends its time, per message: one `run_pass` over N generated replies in a
local Maildir (SQLite, static site, Maildir outbox: no servers), with wall-clock timers
around the functions that matter and around SQLAlchemy's execute/flush/get.

    .venv/bin/python -m benchmarks.breakdown [N] [--postgres] [--statements]   # N = 300 by default

--postgres uses a fresh database on MAILFLOW_TEST_POSTGRES_URL (from var/services/env);
--statements also lists the SQL statements per message, with their time at the driver.

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
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from benchmarks import corpus
from mailflow import worker
from mailflow.app import build_app
from mailflow.config import load_settings
from mailflow.sources.delivery import deliver_to_maildir
from mailflow.testing import fresh_postgres_database, make_settings

Seconds = dict[str, float]
TIMED = {
    "mailflow.worker": [
        "process_all", "decide_batch", "answer_batch", "decide_one", "process_message", "publish", "send_the_rest", "file_all",
    ],
    "mailflow.process": ["_is_duplicate", "classify"],
    "mailflow.reading": ["parse_message", "read_answers"],
    "mailflow.interviews": [
        "_same_interview", "allocate_number", "link_crossovers", "reply_to",
        "interview_confirmed_in",
    ],
    "mailflow.replies": ["compose", "replies_today"],
    "mailflow.publishing": ["take", "record_publication"],
    "mailflow.app:App": ["recheck_crossovers"],
    "mailflow.sending:BackgroundSender": ["settle"],
    "mailflow.reading:ReadAhead": ["reading"],
    "mailflow.crossovers:CrossoverIndex": ["catch_up", "add", "related"],
}  # fmt: skip


def timed(spent: Seconds, label: str, function: Callable[..., object]) -> Callable[..., object]:
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
    spent: Seconds = defaultdict(float)
    for module_name, names in TIMED.items():
        module_path, _, class_name = module_name.partition(":")
        module = importlib.import_module(module_path)
        if class_name:
            module = getattr(module, class_name)
        for name in names:
            setattr(module, name, timed(spent, name, getattr(module, name)))
    for method in ("execute", "flush", "get"):
        setattr(Session, method, timed(spent, f"SQLAlchemy {method}", getattr(Session, method)))
    if "--statements" in sys.argv:
        count_statements(app.engine, spent)
    started = time.perf_counter()
    report = worker.run_pass(app)
    total = time.perf_counter() - started
    print(f"{report.summary()}\npass: {total:.2f} s, {total / count * 1000:.1f} ms per message\n")
    print("| where | ms per message |\n|---|---|")
    for label, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        if not label.startswith("SQL: "):
            print(f"| {label} | {seconds / count * 1000:.2f} |")
    if statements:
        print("\n| statement (at the driver) | per message | ms per message |\n|---|---|---|")
        for label, calls in statements.most_common(40):
            print(f"| {label} | {calls / count:.2f} | {spent[label] / count * 1000:.2f} |")
    app.close()


statements: Counter[str] = Counter()


def count_statements(engine: Engine, spent: Seconds) -> None:
    """Count and time every statement at the driver, by its first words."""

    @event.listens_for(engine, "before_cursor_execute")
    def started(conn: Any, cursor: Any, statement: str, *args: object) -> None:
        conn.info["started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def finished(conn: Any, cursor: Any, statement: str, *args: object) -> None:
        label = "SQL: " + " ".join(statement.split())[:70]
        statements[label] += 1
        spent[label] += time.perf_counter() - conn.info.pop("started", time.perf_counter())


if __name__ == "__main__":
    size = int(next((arg for arg in sys.argv[1:] if arg.isdigit()), "300"))
    if "--postgres" in sys.argv:
        with fresh_postgres_database(os.environ["MAILFLOW_TEST_POSTGRES_URL"]) as url:
            main(size, url)
    else:
        main(size)
