"""Crash safety proven by killing the worker: SIGKILL at random moments and at chosen points
(inside the numbering transaction, around sending, around publishing, around filing), then
restart until the mailbox is drained. Nothing is lost and nothing is doubled: one number per
complete reply, gapless from 00001; one numbered reply per sender, re-sent only with the
same Message-ID; one page per interview; every row in a final state."""

from __future__ import annotations

import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path

from sqlmodel import Session, select

from mailflow.app import build_app
from mailflow.config import load_settings
from mailflow.models import InboundMessage, Interview, OutboxItem, Publication
from mailflow.sources.delivery import deliver_to_maildir
from mailflow.testing import REPO, make_reply, make_settings

from conftest import QUESTIONS

COMPLETE, INCOMPLETE, REQUESTS, AUTOMATIC, DUPLICATES = 110, 5, 10, 10, 10
TRIALS = 34
TARGETS = [
    "render:1",
    "send-before:2",
    "send-after:1",
    "publish-before:1",
    "publish-after:2",
    "listing:1",
    "file-after:3",
    "render:3",
    "send-after:3",
]


@dataclass
class Mail:
    raw: bytes
    kind: str  # complete, incomplete, request, automatic
    sender: str
    message_id: str


@dataclass
class Trials:
    killed: Counter[str] = field(default_factory=Counter)
    survived: Counter[str] = field(default_factory=Counter)


def message_set() -> list[Mail]:
    """Every shape of incoming mail, mixed in a fixed random order, duplicates included."""
    mails = []
    for i in range(COMPLETE):
        answers = {
            n: f"Person {i} on question {n}: warehouse shifts, {i * n} applications, a mentor."
            for n in range(1, len(QUESTIONS) + 1)
        }
        sender, message_id = f"person{i}@example.net", f"<complete-{i}@example.net>"
        mails.append(
            Mail(
                make_reply(answers, sender=f"Person {i} <{sender}>", questions=QUESTIONS, message_id=message_id),
                "complete",
                sender,
                message_id,
            )
        )
    for i in range(INCOMPLETE):
        sender, message_id = f"partial{i}@example.org", f"<partial-{i}@example.org>"
        mails.append(
            Mail(
                make_reply(
                    {1: "Care work.", 2: "Six months."}, sender=sender, questions=QUESTIONS, message_id=message_id
                ),
                "incomplete",
                sender,
                message_id,
            )
        )
    for i in range(REQUESTS):
        sender, message_id = f"asker{i}@example.org", f"<request-{i}@example.org>"
        raw = (
            f"From: Asker {i} <{sender}>\r\nTo: interview@jobseekers.example\r\nSubject: the interview\r\n"
            f"Message-ID: {message_id}\r\n\r\nHello, could you send me the questions? Thanks\r\n"
        ).encode()
        mails.append(Mail(raw, "request", sender, message_id))
    automatic_headers = [
        "Auto-Submitted: auto-replied\r\nSubject: Automatic reply: the interview",
        "Precedence: bulk\r\nSubject: newsletter",
        "List-Id: <jobs.lists.example.org>\r\nSubject: jobs",
        "Subject: Out of Office",
        "Subject: Undelivered Mail Returned to Sender",
    ]
    for i in range(AUTOMATIC):
        sender = "mailer-daemon@mx.example.org" if i % 5 == 4 else f"away{i}@example.org"
        message_id = f"<auto-{i}@example.org>"
        raw = (
            f"From: {sender}\r\nTo: interview@jobseekers.example\r\n{automatic_headers[i % 5]}\r\n"
            f"Message-ID: {message_id}\r\n\r\nI am away until Monday.\r\n"
        ).encode()
        mails.append(Mail(raw, "automatic", sender, message_id))
    mails.extend(random.Random(11).sample(mails[:COMPLETE], DUPLICATES))  # the same bytes delivered twice
    random.Random(7).shuffle(mails)
    return mails


class Zygote:
    """tests/crashworker.py as a fork server; lines from its stdout arrive on a queue."""

    def __init__(self, settings: Path, journal: Path, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "crashworker.py"), str(settings), str(journal)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("wb"),
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.expect("zygote ready", timeout=60)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def expect(self, prefix: str, timeout: float = 30) -> str:
        line = self.lines.get(timeout=timeout)
        assert line.startswith(prefix), f"expected {prefix!r}, got {line!r}"
        return line

    def start(self, seed: int, mode: str) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write(f"run {seed} {mode}\n")
        self.process.stdin.flush()
        return int(self.expect("ready").split()[1])

    def wait_exit(self, pid: int) -> int:
        while True:
            line = self.lines.get(timeout=60)
            if line.startswith("exit "):
                _, exited, code = line.split()
                assert int(exited) == pid
                return int(code)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def run_trials(zygote: Zygote, inbox: Path, mails: list[Mail]) -> Trials:
    trials = Trials()
    batches = [mails[i::TRIALS] for i in range(TRIALS)]
    for trial, batch in enumerate(batches):
        for mail in batch:
            deliver_to_maildir(inbox, mail.raw)
        rng = random.Random(1000 + trial)
        mode = "random" if trial % 2 == 0 else TARGETS[(trial // 2) % len(TARGETS)]
        pid = zygote.start(trial, mode)
        if mode == "random":
            time.sleep(rng.uniform(0.0, 0.6))
            os.kill(pid, signal.SIGKILL)
        code = zygote.wait_exit(pid)
        assert code in (-signal.SIGKILL, 0), f"trial {trial} ({mode}): the worker exited with {code}"
        (trials.killed if code == -signal.SIGKILL else trials.survived)[mode.split(":")[0]] += 1
    return trials


def read_journal(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def test_sigkill_at_any_moment_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    settings_path = make_settings(tmp_path / "site")
    app = build_app(load_settings(settings_path))  # creates the database once, before any kill
    inbox, outbox = app.settings.incoming.path("path"), app.settings.outgoing.path("path")
    site = app.settings.blog.path("path")
    mails = message_set()
    journal = tmp_path / "journal.txt"
    zygote = Zygote(settings_path, journal, tmp_path / "worker.log")
    try:
        trials = run_trials(zygote, inbox, mails)
        drain = zygote.start(0, "drain")
        zygote.expect("drained")
        assert zygote.wait_exit(drain) == 0
        last = zygote.start(0, "drain")
        zygote.expect("drained")
        assert zygote.wait_exit(last) == 0
    finally:
        zygote.close()
    log = (tmp_path / "worker.log").read_text()
    assert "Traceback" not in log, log[-3000:]

    # The kills really landed, and where they were meant to.
    assert sum(trials.killed.values()) >= 30, trials
    for point in ("random", "render", "send-before", "send-after", "publish-before", "publish-after", "listing"):
        assert trials.killed[point] >= 1, (point, trials)
    entries = read_journal(journal)
    interrupted_sends = _started_not_done(entries, "send")
    assert interrupted_sends, "no kill landed between handing a mail to the outbox and recording it"
    # A final pass over the drained mailbox finds nothing to do.
    last_passes = [e for e in entries if e[0] == str(last) and e[1] == "pass"]
    assert len(last_passes) == 1, last_passes

    with Session(app.engine) as session:
        inbound = session.exec(select(InboundMessage).order_by(InboundMessage.id)).all()
        interviews = session.exec(select(Interview).order_by(Interview.number)).all()
        outbox_rows = session.exec(select(OutboxItem).order_by(OutboxItem.id)).all()
        publications = session.exec(select(Publication)).all()
    app.close()
    by_kind = defaultdict(list)
    for mail in {id(mail): mail for mail in mails}.values():
        by_kind[mail.kind].append(mail)
    complete_ids = {mail.message_id: mail.sender for mail in by_kind["complete"]}

    # Every message stored once and decided; the mailbox is filed.
    assert len(inbound) == len(mails)
    assert Counter(row.state for row in inbound)["received"] == 0
    assert "failed" not in {row.state for row in inbound}, [row.reason for row in inbound if row.state == "failed"]
    assert all(row.filing == "filed" for row in inbound)
    assert list((inbox / "new").iterdir()) == [] and len(list((inbox / "cur").iterdir())) == len(mails)

    # One number per complete reply, gapless from 00001; duplicates ignored.
    numbered = [row for row in inbound if row.state == "numbered"]
    assert sorted(row.message_id for row in numbered) == sorted(complete_ids)
    assert [interview.number for interview in interviews] == list(range(1, COMPLETE + 1))
    assert len({interview.inbound_id for interview in interviews}) == COMPLETE
    assert Counter(row.reason for row in inbound if row.state == "ignored")["duplicate-message-id"] == DUPLICATES
    message_id_of = {row.id: row.message_id for row in inbound}
    number_of_sender = {complete_ids[message_id_of[i.inbound_id]]: i.number for i in interviews}

    # Every outbox row sent, as exactly one file, with its own Message-ID; re-sends identical.
    assert {row.state for row in outbox_rows} == {"sent"}
    assert not (outbox / "tmp").exists() or list((outbox / "tmp").iterdir()) == [], "half-written outbox files"
    files = sorted(path for sub in ("new", "cur") if (outbox / sub).exists() for path in (outbox / sub).iterdir())
    file_ids = [int(re.fullmatch(r"mailflow-(\d+)\.eml(?::2,.*)?", path.name).group(1)) for path in files]  # type: ignore[union-attr]
    assert sorted(file_ids) == [row.id for row in outbox_rows], "one file per outbox row, no more, no less"
    rows = {row.id: row for row in outbox_rows}
    sent_to: defaultdict[str, list[str]] = defaultdict(list)
    for path, row_id in zip(files, file_ids, strict=True):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert message["Message-ID"] == rows[row_id].message_id
        assert message["To"] == rows[row_id].recipient
        sent_to[rows[row_id].recipient].append(rows[row_id].kind)
        if rows[row_id].kind == "numbered":
            assert f"{number_of_sender[rows[row_id].recipient]:05d}" in message["Subject"]
    for entry in entries:
        if entry[1] == "send-start":
            assert rows[int(entry[2])].message_id == entry[3], f"outbox {entry[2]} re-sent with another Message-ID"
    for mail in by_kind["complete"]:
        assert sent_to[mail.sender].count("numbered") == 1, (mail.sender, sent_to[mail.sender])
    for mail in by_kind["request"]:
        assert sent_to[mail.sender] == ["questionnaire"], (mail.sender, sent_to[mail.sender])
    for mail in by_kind["incomplete"]:
        assert sent_to[mail.sender] == ["incomplete"], (mail.sender, sent_to[mail.sender])
    for mail in by_kind["automatic"]:
        assert mail.sender not in sent_to, mail.sender

    # Every interview has its page, once; the listing counts them all.
    assert {p.state for p in publications} == {"published"} and len(publications) == COMPLETE
    pages = sorted(path.name for path in (site / "interviews").iterdir())
    assert pages == [f"{n:05d}" for n in range(1, COMPLETE + 1)]
    for name in pages:
        assert f"#{name}" in (site / "interviews" / name / "index.html").read_text()
    assert f"{COMPLETE:05d}</strong> interviews so far" in (site / "index.html").read_text()
    published = Counter(int(e[2]) for e in entries if e[1] == "publish-done")
    assert set(published) == set(range(1, COMPLETE + 1))
    assert not [p for p in (site / "interviews").rglob("*") if p.name.endswith(".tmp")], "half-written pages"
    print(
        json.dumps(
            {
                "killed": trials.killed,
                "survived": trials.survived,
                "interrupted sends": len(interrupted_sends),
                "interrupted publishes": len(_started_not_done(entries, "publish")),
            }
        )
    )


def _started_not_done(entries: list[list[str]], step: str) -> list[list[str]]:
    """Journal entries of a `step` that a process started and never finished (it was killed)."""
    open_calls: dict[tuple[str, str], list[str]] = {}
    for entry in entries:
        if entry[1] == f"{step}-start":
            open_calls[(entry[0], entry[2])] = entry
        elif entry[1] == f"{step}-done":
            open_calls.pop((entry[0], entry[2]), None)
    return list(open_calls.values())


def test_a_page_left_half_written_by_a_killed_worker_is_cleared_when_it_goes_up_again(tmp_path: Path) -> None:
    """A kill between writing a page's temporary file and renaming it into place leaves that
    file; the page's next publication (it was never recorded as up) removes it."""
    from mailflow.worker import run_pass

    app = build_app(load_settings(make_settings(tmp_path / "site")))
    deliver_to_maildir(app.settings.incoming.path("path"), make_reply(
        {n: f"Answer {n}." for n in range(1, 9)}, questions=QUESTIONS))  # fmt: skip
    page_dir = app.settings.blog.path("path") / "interviews" / "00001"
    page_dir.mkdir(parents=True)
    leftover = page_dir / ".index.html.k1ll3d.tmp"
    leftover.write_text("<html><body>half a pa")
    run_pass(app)
    app.close()
    assert "#00001" in (page_dir / "index.html").read_text()
    assert not leftover.exists() and [p.name for p in page_dir.iterdir()] == ["index.html"]
