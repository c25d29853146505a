"""Several workers sharing one PostgreSQL database: nothing processed twice, nothing sent twice,
numbers gapless and unique."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlmodel import Session, select

from mailflow.app import build_app
from mailflow.config import load_settings
from mailflow.models import InboundMessage, Interview, OutboxItem, Publication
from mailflow.testing import REPO, make_reply, make_settings

from conftest import QUESTIONS, deliver
from databases import fresh_postgres_database

WORKERS = 4
REPLIES = 120
DUPLICATES = 40

WORKER = """
import sys
from mailflow.app import build_app
from mailflow.config import load_settings
from mailflow.worker import run_pass
app = build_app(load_settings(sys.argv[1]))
for _ in range(3):
    run_pass(app)
app.close()
"""


def test_four_workers_on_postgresql_number_each_reply_once_and_reply_once(tmp_path: Path) -> None:
    with fresh_postgres_database() as url:
        settings = make_settings(tmp_path, database=url)
        app = build_app(load_settings(settings))
        for index in [*range(REPLIES), *range(DUPLICATES)]:  # some delivered twice, as an MTA retrying does
            answers = {n: f"Worker test answer {n} from person {index}." for n in range(1, 9)}
            reply = make_reply(answers, sender=f"P{index} <p{index}@example.net>", questions=QUESTIONS,
                               message_id=f"<conc-{index}@example.net>")  # fmt: skip
            deliver(app, reply)
        workers = [
            subprocess.Popen([sys.executable, "-c", WORKER, str(settings)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(WORKERS)
        ]  # fmt: skip
        for worker in workers:
            _, stderr = worker.communicate(timeout=240)
            assert worker.returncode == 0, stderr.decode()[-2000:]
        with Session(app.engine) as session:
            numbers = sorted(i.number for i in session.exec(select(Interview)))
            states = [m.state for m in session.exec(select(InboundMessage))]
            failures = [m.reason for m in session.exec(select(InboundMessage)) if m.state == "failed"]
            replies = [o.recipient for o in session.exec(select(OutboxItem)) if o.kind == "numbered"]
            unsent = [o for o in session.exec(select(OutboxItem)) if o.state != "sent"]
            unpublished = [p for p in session.exec(select(Publication)) if p.state != "published"]
        app.close()
    assert failures == []
    assert numbers == list(range(1, REPLIES + 1))
    assert states.count("numbered") == REPLIES and states.count("ignored") == DUPLICATES and "received" not in states
    assert sorted(replies) == sorted(f"p{i}@example.net" for i in range(REPLIES))
    assert unsent == [] and unpublished == []
    outbox = list((tmp_path / "var" / "mail" / "outbox" / "new").iterdir())
    assert len(outbox) == REPLIES, "each reply handed over exactly once"
    assert len(list((tmp_path / "var" / "site" / "interviews").iterdir())) == REPLIES
