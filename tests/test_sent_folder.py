"""[outgoing] sent_folder against the real Dovecot and SMTP server: a copy of each sent email in
the host's Sent folder, as a mail client keeps one, and a send that never depends on it."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from sqlmodel import Session, select
from test_smtp_outbox import crlf, mail, received

from mailflow.app import build_app
from mailflow.config import Section, load_settings
from mailflow.errors import ConfigError
from mailflow.models import OutboxItem
from mailflow.outbox.smtp import SmtpOutbox
from mailflow.testing import make_request
from mailflow.worker import run_pass

from services import Services, require_services

pytestmark = pytest.mark.services


@pytest.fixture
def services() -> Services:
    return require_services()


def sections(services: Services, tmp_path: Path, **incoming: str) -> tuple[Section, Section]:
    outgoing = Section("outgoing", services.outgoing(sent_folder="Sent"), tmp_path)
    imap = services.incoming(**incoming)
    return outgoing, Section("incoming", imap, tmp_path)


def folder_messages(services: Services, folder: str) -> list[tuple[bytes, tuple[bytes, ...]]]:
    """(bytes, flags) of every message in jobs@'s folder."""
    with services.imap() as client:
        client.select_folder(folder, readonly=True)
        data = client.fetch(client.search(["ALL"]), [b"BODY.PEEK[]", b"FLAGS"])
    return [(item[b"BODY[]"], item[b"FLAGS"]) for _, item in sorted(data.items())]


def test_after_a_pass_the_reply_is_in_the_sent_folder_byte_for_byte(services: Services, tmp_path: Path) -> None:
    folder = services.fresh_folder()
    sent_folder = f"{folder}/Sent"  # not there yet: mailflow creates it
    services.append(folder, make_request())
    path = services.settings_ini(
        tmp_path,
        incoming={"folder": folder, "done_folder": f"{folder}/Done", "ignored_folder": f"{folder}/Ignored"},
        outgoing={"sent_folder": sent_folder},
    )
    app = build_app(load_settings(path))
    try:
        report = run_pass(app)
        assert (report.fetched, report.sent) == (1, 1), report.summary()
        with Session(app.engine) as session:
            [reply] = session.exec(select(OutboxItem)).all()
    finally:
        app.close()
    [(copy, flags)] = folder_messages(services, sent_folder)
    assert crlf(copy) == crlf(reply.raw) and b"\\Seen" in flags
    [(_, delivered)] = received(services, reply.message_id)
    assert crlf(copy) == crlf(delivered), "the copy is what the SMTP server accepted"


def test_a_copy_that_cannot_be_filed_is_a_warning_and_the_send_stands(
    services: Services, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = str(unused.getsockname()[1])
    smtp = SmtpOutbox.from_section(*sections(services, tmp_path, port=port, timeout="2"))
    batch = [mail("seeker@elsewhere.test", n) for n in (1, 2)]
    try:
        with caplog.at_level(logging.WARNING):
            for item in batch:
                smtp.send(item)  # no DeliveryError: the email went
    finally:
        smtp.close()
    for item in batch:
        assert len(received(services, item.message_id)) == 1
    warnings = [r.getMessage() for r in caplog.records if "no copy filed in Sent" in r.getMessage()]
    assert len(warnings) == 1, "one warning; the rest of the batch does not knock again"
    assert warnings[0].startswith("outbox 1: sent, but no copy filed in Sent")


def test_sent_folder_needs_an_imap_incoming_mailbox(services: Services, tmp_path: Path) -> None:
    outgoing, _ = sections(services, tmp_path)
    with pytest.raises(ConfigError, match=r"\[outgoing\] sent_folder = Sent .* needs \[incoming\] backend = imap"):
        SmtpOutbox.from_section(outgoing, Section("incoming", {"backend": "maildir"}, tmp_path))
    empty = Section("outgoing", {**outgoing.values, "sent_folder": ""}, tmp_path)
    assert SmtpOutbox.from_section(empty, None).sent_folder is None, "empty: off, the default"


def test_doctor_names_the_sent_folder(services: Services, tmp_path: Path) -> None:
    folder = services.fresh_folder()
    outgoing, incoming = sections(services, tmp_path)
    outgoing = Section("outgoing", {**outgoing.values, "sent_folder": folder}, tmp_path)
    smtp = SmtpOutbox.from_section(outgoing, incoming)
    try:
        assert smtp.check()[-1] == f"a copy of each sent email goes to the IMAP folder {folder!r} (exists)"
    finally:
        smtp.close()
