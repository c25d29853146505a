"""The whole loop over real servers: requests arrive by IMAP, replies leave by SMTP, mail is filed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailflow.app import App, build_app
from mailflow.config import load_settings
from mailflow.models import InboundMessage
from mailflow.testing import make_request, wait_until
from mailflow.worker import run_pass

from services import Services, require_services

pytestmark = pytest.mark.services


@pytest.fixture
def services() -> Services:
    return require_services()


ANSWERS = [
    "Work in a library, ideally cataloguing.",
    "Eight months, mostly online applications.",
    "Hearing nothing back at all.",
    "A weekly walk with a friend who is also looking.",
    "Mass-applying to everything.",
]


def build(services: Services, tmp_path: Path, folder: str, **incoming: str) -> App:
    path = services.settings_ini(
        tmp_path,
        incoming={"folder": folder, "done_folder": f"{folder}/Done", "ignored_folder": f"{folder}/Ignored", **incoming},
        outgoing={},
    )
    app = build_app(load_settings(path))
    return app


def parsed(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def msgid(raw: bytes) -> str:
    return str(parsed(raw)["Message-ID"]).strip()


def seeker_mail_answering(services: Services, message_id: str, timeout: float = 5.0) -> EmailMessage:
    """The reply to `message_id` as it arrived in seeker@'s INBOX (delivered by the SMTP server)."""

    def look() -> bytes | None:
        with services.imap("seeker") as client:
            client.select_folder("INBOX", readonly=True)
            uids = client.search(["HEADER", "In-Reply-To", message_id])
            return client.fetch(uids, [b"BODY.PEEK[]"])[uids[-1]][b"BODY[]"] if uids else None

    raw = wait_until(look, timeout, 0.2)
    assert raw, f"no reply to {message_id} reached seeker@example.test"
    return parsed(raw)


def answer(questionnaire: EmailMessage) -> bytes:
    """Reply as a mail client would: the questionnaire quoted, an answer under each question."""
    text = questionnaire.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    lines, answers = [], iter(ANSWERS)
    for line in text.splitlines():
        lines.append(f"> {line}".rstrip())
        if re.match(r"^\d+\. ", line):
            lines.extend(["", next(answers, ""), ""])
    reply = EmailMessage()
    reply["From"] = "Sam Seeker <seeker@example.test>"
    reply["To"] = "jobs@example.test"
    reply["Subject"] = "Re: " + str(questionnaire["Subject"])
    reply["Message-ID"] = make_msgid(domain="client.example.test")
    reply["In-Reply-To"] = questionnaire["Message-ID"]
    reply["References"] = questionnaire["Message-ID"]
    reply.set_content("On Monday, The Job-Seeker's Interview wrote:\n" + "\n".join(lines) + "\n")
    return reply.as_bytes()


def folder_message_ids(services: Services, folder: str) -> list[str]:
    with services.imap() as client:
        client.select_folder(folder, readonly=True)
        data = client.fetch(client.search(["ALL"]), [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    return sorted(msgid(item[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]) for item in data.values())


def test_request_and_reply_over_imap_and_smtp_get_a_number_a_page_and_are_filed(
    services: Services, tmp_path: Path
) -> None:
    folder = services.fresh_folder()
    request = make_request()
    services.append(folder, request)
    app = build(services, tmp_path, folder)
    try:
        first = run_pass(app)
        assert (first.fetched, first.decided["questionnaire_sent"], first.sent) == (1, 1, 1), first.summary()
        questionnaire = seeker_mail_answering(services, msgid(request))
        assert questionnaire["Auto-Submitted"] == "auto-replied"

        reply = answer(questionnaire)
        services.append(folder, reply)
        second = run_pass(app)
        assert second.decided["numbered"] == 1, second.summary()
        assert (second.sent, second.published) == (1, 1), second.summary()
        numbered = seeker_mail_answering(services, msgid(reply))
        assert str(numbered["Subject"]).startswith("Your interview number is"), numbered["Subject"]
        assert "00001" in numbered.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert any("Eight months" in p.read_text() for p in app.settings.blog.path("path").rglob("*.html"))

        assert folder_message_ids(services, folder) == []
        assert folder_message_ids(services, f"{folder}/Done") == sorted([msgid(request), msgid(reply)])
        with Session(app.engine) as session:
            assert {row.filing for row in session.exec(select(InboundMessage))} == {"filed"}
    finally:
        app.close()


def test_after_a_uidvalidity_reset_nothing_is_processed_twice_and_nothing_skipped(
    services: Services, tmp_path: Path
) -> None:
    folder = services.fresh_folder()
    old = [make_request(sender=f"person{n}@example.test", subject=f"old {n}") for n in range(3)]
    for raw in old:
        services.append(folder, raw)
    app = build(services, tmp_path, folder, filing="flag")
    try:
        assert run_pass(app).fetched == 3
        # The folder is rebuilt (a server migration): a new UIDVALIDITY, one old message back
        # with its keyword lost, and a new one at UID 1, below the old last UID.
        with services.imap() as client:
            client.delete_folder(folder)
            client.create_folder(folder)
        new = make_request(sender="newcomer@example.test", subject="new")
        services.append(folder, new)
        services.append(folder, old[0])
        with services.imap() as client:
            validity = client.select_folder(folder)[b"UIDVALIDITY"]
        services.doveadm("mailbox", "update", "-u", "jobs@example.test", "--uid-validity", str(validity + 7), folder)

        second = run_pass(app)
        assert second.fetched == 1, second.summary()
        with Session(app.engine) as session:
            ids = [row.message_id for row in session.exec(select(InboundMessage))]
        assert sorted(ids) == sorted(msgid(raw) for raw in [*old, new])
        assert run_pass(app).fetched == 0
    finally:
        app.close()


def test_a_message_delivered_twice_is_stored_twice_even_while_the_first_is_decided(
    services: Services, tmp_path: Path
) -> None:
    """A first pass (no UID state yet) looks for each message's Message-ID among those
    stored; another worker decides what this one stores meanwhile. The second delivery of a
    message whose first was stored and decided by then is still stored (and ignored as a
    duplicate in its turn): every message in the folder ends in a recorded state."""
    folder = services.fresh_folder()
    twice = make_request(sender="twice@example.test", subject="sent twice")
    for raw in (twice, make_request(sender="other@example.test"), twice):
        services.append(folder, raw)
    app = build(services, tmp_path, folder, batch_size="1")
    try:
        fetching = app.source.fetch()
        first = next(fetching)
        with Session(app.engine) as session:  # stored and decided (by another worker) meanwhile
            session.add(
                InboundMessage(source_key=first.key, raw=first.raw, size=len(first.raw), message_id=msgid(twice))
            )
            session.commit()
        rest = list(fetching)
        assert [parsed(mail.raw)["Subject"] for mail in rest] == ["Interview?", "sent twice"]
        assert len({first.key, *(mail.key for mail in rest)}) == 3
    finally:
        app.close()


def test_idle_push_mode_answers_new_mail_within_seconds(services: Services, tmp_path: Path) -> None:
    folder = services.fresh_folder()
    app = build(services, tmp_path, folder, idle="yes")
    app.close()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "mailflow.cli", "--config", str(app.settings.path), "run"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert worker.stderr is not None
        for line in worker.stderr:
            if "IMAP IDLE" in line:
                break
        time.sleep(0.3)  # let it enter IDLE
        request = make_request()
        started = time.monotonic()
        services.append(folder, request)
        arrived = wait_until(
            lambda: [
                m
                for m in services.sink_messages_to("seeker@example.test")
                if str(parsed(m)["In-Reply-To"]).strip() == msgid(request)
            ],
            timeout=10,
        )
        elapsed = time.monotonic() - started
        assert arrived, "the questionnaire never left"
        assert elapsed < 2.5, f"push mode took {elapsed:.1f} s"
        print(f"push mode: questionnaire sent {elapsed:.2f} s after the request arrived")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0
