"""Publishing cost as the site grows: one pass with one new reply, on a site of N interviews.

The site of N interviews is made fast by inserting its rows directly (InboundMessage,
Interview with realistic answers and related links, Publication `published`, the
counter), as N earlier passes would have left them; the pages of those N interviews are
not written to disk (only the pages a pass touches are). The measured pass then reads
one new complete reply from a Maildir and writes its reply to a Maildir outbox: with no
network in the pass, what is measured is what grows with the site. Static site, SQLite.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import insert

import mailflow.worker as worker
from benchmarks import corpus
from mailflow.app import App, build_app
from mailflow.config import load_settings
from mailflow.crossovers import MIN_SIMILARITY, RELATED_COUNT, CrossoverIndex
from mailflow.identity import sender_hash
from mailflow.models import Counter, InboundMessage, Interview, Publication
from mailflow.pages import answers_to_json
from mailflow.sources.delivery import deliver_to_maildir
from mailflow.testing import make_settings

STEPS = ("fetch", "process_all", "send_all", "publish_all", "file_all")
INSERT_CHUNK = 1000


def build_site(folder: Path, size: int) -> App:
    """An installation whose site already has `size` published interviews."""
    app = build_app(load_settings(make_settings(folder)))
    texts = [corpus.answer_text(number) for number in range(1, size + 1)]
    related = _related_links(texts)
    first_day = date(2024, 1, 1)
    with app.engine.begin() as connection:
        for start in range(0, size, INSERT_CHUNK):
            numbers = range(start + 1, min(start + INSERT_CHUNK, size) + 1)
            connection.execute(insert(InboundMessage), [_inbound(app, n) for n in numbers])
            connection.execute(insert(Interview), [
                {"number": n, "inbound_id": n, "sender_hash": sender_hash(app.secret, corpus.address("site", n)),
                 "answers_json": answers_to_json(app.questions, corpus.answers(n)),
                 "related_json": json.dumps(related[n - 1]), "submitted_on": first_day + timedelta(days=n // 20),
                 "updated_at": datetime.now(UTC)}
                for n in numbers
            ])  # fmt: skip
            connection.execute(insert(Publication), [
                {"interview_id": n, "state": "published", "remote_id": f"{n:05d}", "url": app.publisher.permalink(n),
                 "attempts": 0, "last_error": "", "next_attempt_at": datetime.now(UTC), "updated_at": datetime.now(UTC)}
                for n in numbers
            ])  # fmt: skip
        connection.execute(insert(Counter), [{"name": "interview", "value": size}])
    return app


def _inbound(app: App, number: int) -> dict[str, object]:
    return {
        "source_key": f"maildir:site-{number}", "message_id": f"<site.{number}@bench.example.net>",
        "raw": b"(raw message: not needed by this benchmark)", "size": 3000, "arrived_at": datetime.now(UTC),
        "state": "numbered", "reason": f"interview-{number:05d}", "rule_hits": "[]",
        "sender_hash": sender_hash(app.secret, corpus.address("site", number)), "filing": "filed", "attempts": 0,
        "updated_at": datetime.now(UTC),
    }  # fmt: skip


def _related_links(texts: list[str]) -> list[list[int]]:
    """Each interview's closest others by the same TF-IDF as mailflow, computed in blocks
    (asking CrossoverIndex.related one by one would take minutes at 10,000)."""
    index = CrossoverIndex(enumerate(texts, start=1))
    matrix = index._matrix  # the fitted rows: a benchmark may look inside
    assert matrix is not None
    links: list[list[int]] = []
    for start in range(0, len(texts), 500):
        scores = (matrix[start : start + 500] @ matrix.T).toarray()
        for row, position in enumerate(range(start, start + scores.shape[0])):
            scores[row, position] = -1.0
        best = np.argsort(-scores, axis=1)[:, :RELATED_COUNT]
        for row in range(scores.shape[0]):
            links.append([int(c) + 1 for c in best[row] if scores[row, c] >= MIN_SIMILARITY])
    return links


@contextmanager
def timed_steps() -> Iterator[dict[str, list[float]]]:
    """Time each step of run_pass (the worker's module-level functions), without changing them."""
    times: dict[str, list[float]] = defaultdict(list)
    originals = {name: getattr(worker, name) for name in STEPS if hasattr(worker, name)}

    def timing(name: str, function: Callable[..., object]) -> Callable[..., object]:
        def timed(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                times[name].append(time.perf_counter() - started)

        return timed

    for name, function in originals.items():
        setattr(worker, name, timing(name, function))
    try:
        yield times
    finally:
        for name, function in originals.items():
            setattr(worker, name, function)


def add_one(app: App, number: int) -> float:
    """Deliver one new complete reply and time the pass that handles it."""
    deliver_to_maildir(app.settings.incoming.path("path"), corpus.reply("pub", number))
    started = time.perf_counter()
    report = worker.run_pass(app)
    seconds = time.perf_counter() - started
    assert report.decided.get("numbered") == 1 and report.sent == 1, report.summary()
    return seconds


def measure(folder: Path, size: int, repeats: int = 3) -> tuple[float, dict[str, float], float]:
    """(median pass seconds, median seconds per step, seconds to build the site)."""
    started = time.perf_counter()
    app = build_site(folder, size)
    built = time.perf_counter() - started
    try:
        add_one(app, size + 1_000_000)  # warm: templates compiled, modules imported
        with timed_steps() as steps:
            passes = [add_one(app, size + 1_000_001 + n) for n in range(repeats)]
    finally:
        app.close()
    return statistics.median(passes), {name: statistics.median(v) for name, v in steps.items()}, built


def profile_pass(folder: Path, size: int, out: Path) -> None:
    """A pyinstrument profile of one pass with one new reply at a site of `size`."""
    from pyinstrument import Profiler

    app = build_site(folder, size)
    try:
        add_one(app, size + 1_000_000)
        deliver_to_maildir(app.settings.incoming.path("path"), corpus.reply("pub", size + 1_000_001))
        profiler = Profiler(interval=0.001)
        with profiler:
            worker.run_pass(app)
        out.write_text(profiler.output_text(unicode=False, color=False))
    finally:
        app.close()
