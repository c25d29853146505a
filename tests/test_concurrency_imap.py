"""Four workers over one real Dovecot folder and one PostgreSQL database: 1,000 replies with
requests, automatic mail and duplicate deliveries mixed in. Every number once, every
sender one reply, every message decided and filed."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailflow.app import build_app
from mailflow.config import load_settings
from mailflow.models import InboundMessage, Interview, OutboxItem, Publication
from mailflow.testing import REPO, load_eml, make_reply, make_request

from conftest import QUESTIONS
from databases import fresh_postgres_database
from services import Services, require_services

pytestmark = pytest.mark.services

WORKERS = 4
REPLIES = 1000
REQUESTS = 60
AUTOMATIC = 40
DUPLICATES = 50
PASSES = 3
APPEND_BATCH = 200
AUTOMATIC_MAIL = [
    "auto-reply-out-of-office.eml",
    "bounce-dsn-postfix.eml",
    "list-digest.eml",
    "noreply-notification.eml",
]
WORDS = ("library", "warehouse", "nursing", "teaching", "accounts", "design", "logistics", "care", "retail", "data",
         "agency", "silence", "rent", "mentor", "course", "walks", "interviews", "feedback", "travel", "childcare")  # fmt: skip

# run_pass a few times, as `mailflow run --once` from cron would: later passes file what
# another worker had moved first, and pick up anything left over.
WORKER = f"""
import sys
from mailflow.app import build_app
from mailflow.config import load_settings
from mailflow.worker import run_pass
app = build_app(load_settings(sys.argv[1]))
for _ in range({PASSES}):
    print(run_pass(app).summary(), flush=True)
app.close()
"""


@pytest.fixture
def services() -> Services:
    return require_services()


@pytest.fixture
def folder(services: Services) -> Iterator[str]:
    """A fresh folder, deleted afterwards with its Done and Ignored: 2,000 messages a run add up."""
    name = services.fresh_folder()
    yield name
    with services.imap() as client:
        for _, _, found in sorted(client.list_folders(name), key=lambda item: len(item[2]), reverse=True):
            client.delete_folder(found)


def answers(index: int) -> dict[int, str]:
    rng = random.Random(index)
    return {n: f"Answer {n} from person {index}: {' '.join(rng.sample(WORDS, 5))}." for n in range(1, 9)}


def complete_reply(tag: str, index: int) -> bytes:
    return make_reply(answers(index), sender=f"Person {index} <{tag}-{index}@example.net>", questions=QUESTIONS,
                      message_id=f"<{tag}.{index}@example.net>")  # fmt: skip


def request(tag: str, index: int) -> bytes:
    return make_request(f"{tag}-ask-{index}@example.net", subject="Taking part", name=f"Asker {index}",
                        message_id=f"<{tag}.ask.{index}@example.net>")  # fmt: skip


def automatic(tag: str, index: int) -> bytes:
    """A realistic out-of-office, bounce, list digest or no-reply notification, with its own Message-ID."""
    head, sep, body = load_eml(AUTOMATIC_MAIL[index % len(AUTOMATIC_MAIL)]).partition(b"\n\n")
    lines = [line for line in head.split(b"\n") if not line.lower().startswith(b"message-id:")]
    return b"\n".join([*lines, f"Message-ID: <{tag}.auto.{index}@example.net>".encode()]) + sep + body


def mailbox(tag: str) -> list[bytes]:
    """Everything that arrives, shuffled: replies, requests, automatic mail, and 50 replies delivered twice."""
    replies = [complete_reply(tag, i) for i in range(REPLIES)]
    rng = random.Random(tag)
    mail = [*replies, *(request(tag, i) for i in range(REQUESTS)), *(automatic(tag, i) for i in range(AUTOMATIC)),
            *rng.sample(replies, DUPLICATES)]  # fmt: skip
    rng.shuffle(mail)
    return mail


def seed(services: Services, folder: str, messages: list[bytes]) -> None:
    with services.imap() as client:
        for start in range(0, len(messages), APPEND_BATCH):
            client.multiappend(folder, messages[start : start + APPEND_BATCH])


def settings_for(services: Services, tmp_path: Path, folder: str, database: str) -> Path:
    path = services.settings_ini(
        tmp_path,
        incoming={"folder": folder, "done_folder": f"{folder}/Done", "ignored_folder": f"{folder}/Ignored"},
        outgoing={},
    )
    path.write_text(path.read_text().replace("database = sqlite:///db/mailflow.db", f"database = {database}"))
    # Until worker.record_pass creates its folder: on PostgreSQL nothing else makes var/, and
    # writing var/last-pass.json at the end of every pass fails with FileNotFoundError.
    (tmp_path / "var").mkdir(exist_ok=True)
    return path


def folder_sizes(services: Services, *folders: str) -> dict[str, int]:
    with services.imap() as client:
        return {f: int(client.folder_status(f, [b"MESSAGES"])[b"MESSAGES"]) for f in folders}


def start_workers(settings: Path) -> list[subprocess.Popen[bytes]]:
    # Each worker its own UID state file, as workers on separate machines have.
    return [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(settings)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "MAILFLOW_INCOMING_STATE_FILE": f"db/imap-state-{n}.json"},
        )
        for n in range(WORKERS)
    ]  # fmt: skip


def test_four_workers_over_one_imap_folder_number_each_reply_once_and_file_everything(
    services: Services, folder: str, tmp_path: Path
) -> None:
    tag = f"c{uuid.uuid4().hex[:8]}"
    seed(services, folder, mailbox(tag))
    offset = Path(services["SMTP_ENVELOPES"]).stat().st_size
    with fresh_postgres_database() as url:
        settings = settings_for(services, tmp_path, folder, url)
        app = build_app(load_settings(settings))  # migrates once, as a deployment does before starting workers
        started = time.monotonic()
        workers = start_workers(settings)
        for worker in workers:
            _, stderr = worker.communicate(timeout=300)
            assert worker.returncode == 0, stderr.decode()[-3000:]
        elapsed = time.monotonic() - started
        with Session(app.engine) as session:
            inbound = session.exec(select(InboundMessage)).all()
            interviews = session.exec(select(Interview)).all()
            numbers = sorted(i.number for i in interviews)
            outbox = session.exec(select(OutboxItem)).all()
            publications = session.exec(select(Publication)).all()
        app.close()
    print(f"{WORKERS} workers: {len(inbound)} messages in {elapsed:.1f} s")
    uid_of = {m.id: int(m.source_key.rsplit(":", 1)[1]) for m in inbound}
    by_number = [uid_of[i.inbound_id] for i in sorted(interviews, key=lambda i: i.number)]
    out_of_order = sum(1 for a, b in pairwise(by_number) if a > b)

    states = Counter(m.state for m in inbound)
    assert [(m.id, m.reason) for m in inbound if m.state == "failed"] == []
    assert len(inbound) == REPLIES + REQUESTS + AUTOMATIC + DUPLICATES, "each delivery stored exactly once"
    assert states == {"numbered": REPLIES, "questionnaire_sent": REQUESTS, "ignored": AUTOMATIC + DUPLICATES}, states
    assert Counter(m.reason for m in inbound if m.state == "ignored")["duplicate-message-id"] == DUPLICATES
    assert numbers == list(range(1, REPLIES + 1)), "every number 00001..N exactly once"
    assert all(m.filing == "filed" for m in inbound), Counter(m.filing for m in inbound)

    numbered_to = Counter(item.recipient for item in outbox if item.kind == "numbered")
    assert numbered_to == Counter(f"{tag}-{i}@example.net" for i in range(REPLIES))
    assert Counter(item.recipient for item in outbox if item.kind == "questionnaire") == Counter(
        f"{tag}-ask-{i}@example.net" for i in range(REQUESTS)
    )
    assert {item.state for item in outbox} == {"sent"}
    assert {p.state for p in publications} == {"published"} and len(publications) == REPLIES

    # What the SMTP server received: one message per person, none to automatic senders.
    at_sink = Counter(
        rcpt
        for line in Path(services["SMTP_ENVELOPES"]).read_bytes()[offset:].decode().splitlines()
        for rcpt in line.split("\t")[2].split(",")
        if rcpt.startswith(f"{tag}-")
    )
    expected = Counter([*numbered_to, *(f"{tag}-ask-{i}@example.net" for i in range(REQUESTS))])
    assert at_sink == expected, f"{sum(at_sink.values())} messages at the sink for {len(expected)} people"

    assert out_of_order == 0, f"numbers follow arrival (UID) order: {out_of_order} of {REPLIES - 1} neighbours swapped"
    # Each message filed once: no worker MOVEs a message another worker is moving (two
    # concurrent MOVEs of one UID can both copy it before either expunges).
    assert folder_sizes(services, folder, f"{folder}/Done", f"{folder}/Ignored") == {
        folder: 0, f"{folder}/Done": REPLIES + REQUESTS, f"{folder}/Ignored": AUTOMATIC + DUPLICATES,
    }  # fmt: skip
    assert len(list((tmp_path / "site" / "interviews").iterdir())) == REPLIES
