"""SmtpOutbox against the real SMTP server: TLS, login, one connection per batch, 421/451/550."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailflow.app import App, build_app
from mailflow.config import Section, load_settings
from mailflow.errors import ConfigError, DeliveryError
from mailflow.models import OutboxItem
from mailflow.outbox import OutgoingMail
from mailflow.outbox.smtp import SmtpOutbox
from mailflow.sending import send_all
from mailflow.states import now

from services import Services, require_services

pytestmark = pytest.mark.services


@pytest.fixture
def services() -> Services:
    return require_services()


def outbox(services: Services, tmp_path: Path, **values: str) -> SmtpOutbox:
    settings = {
        "host": services["SMTP_HOST"],
        "port": services["SMTPS_PORT"],
        "tls": "ssl",
        "ca_file": services["CA_FILE"],
        "username": services["SMTP_USER"],
        "password": services["SMTP_PASSWORD"],
        **values,
    }
    return SmtpOutbox.from_section(Section("outgoing", settings, tmp_path))


def mail(recipient: str, outbox_id: int = 1) -> OutgoingMail:
    message = EmailMessage()
    message["From"] = "jobs@example.test"
    message["To"] = recipient
    message["Subject"] = "Your questions"
    message_id = make_msgid(domain="example.test")
    message["Message-ID"] = message_id
    message.set_content("Hello,\n.leading dot survives\nthe questions follow.\n")
    return OutgoingMail(outbox_id, message_id, "jobs@example.test", (recipient,), message.as_bytes())


def crlf(raw: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", raw)


def received(services: Services, message_id: str) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every message the server accepted with this Message-ID."""
    found = []
    for name, _, _ in services.sink_envelopes():
        raw = services.sink_message(name)
        if message_id.encode() in raw:
            found.append((name, raw))
    return found


def test_sends_the_stored_bytes_over_implicit_tls_on_one_connection_per_batch(
    services: Services, tmp_path: Path
) -> None:
    smtp = outbox(services, tmp_path)
    batch = [mail(f"seeker+{n}@elsewhere.test", n) for n in range(3)]
    try:
        for item in batch:
            smtp.send(item)
    finally:
        smtp.close()
    names = []
    for item in batch:
        [(name, raw)] = received(services, item.message_id)
        assert raw == crlf(item.raw)
        names.append(name)
    log = services.sink_log()
    peers = {
        re.search(r"(\('127\.0\.0\.1', \d+\)): accepted .* as " + re.escape(name), log).group(1)  # type: ignore[union-attr]
        for name in names
    }
    assert len(peers) == 1, f"expected one connection for the batch, saw {peers}"


def test_starttls_verified_with_ca_file(services: Services, tmp_path: Path) -> None:
    smtp = outbox(services, tmp_path, port=services["SMTP_PORT"], tls="starttls")
    item = mail("seeker@elsewhere.test")
    try:
        smtp.send(item)
    finally:
        smtp.close()
    assert len(received(services, item.message_id)) == 1


def test_unverifiable_certificate_names_ca_file(services: Services, tmp_path: Path) -> None:
    smtp = outbox(services, tmp_path, ca_file="")
    with pytest.raises(DeliveryError, match=r"\[outgoing\] ca_file") as refused:
        smtp.send(mail("seeker@elsewhere.test"))
    assert refused.value.permanent is False


def test_wrong_password_names_the_settings(services: Services, tmp_path: Path) -> None:
    smtp = outbox(services, tmp_path, password="wrong")
    with pytest.raises(
        DeliveryError, match=r"refused the username or password.*check \[outgoing\] username and password"
    ):
        smtp.send(mail("seeker@elsewhere.test"))


def test_tls_none_is_refused_for_a_remote_server_and_warned_on_loopback(
    services: Services, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match=r"\[outgoing\] tls"):
        outbox(services, tmp_path, host="smtp.example.com", tls="none")
    with caplog.at_level(logging.WARNING):
        smtp = outbox(services, tmp_path, port=services["SMTP_PORT"], tls="none", username="", ca_file="")
    assert "without encryption" in caplog.text
    item = mail("seeker@elsewhere.test")
    try:
        smtp.send(item)
    finally:
        smtp.close()
    assert len(received(services, item.message_id)) == 1


@pytest.fixture
def smtp_app(services: Services, tmp_path: Path) -> Iterator[App]:
    path = services.settings_ini(tmp_path, incoming={"backend": "maildir", "path": "inbox"}, outgoing={})
    app = build_app(load_settings(path))
    yield app
    app.close()


def queue(app: App, recipient: str) -> int:
    item = mail(recipient)
    with Session(app.engine) as session:
        row = OutboxItem(kind="questionnaire", recipient=recipient, message_id=item.message_id, raw=item.raw)
        session.add(row)
        session.commit()
        return row.id or 0


def rows(app: App) -> dict[int, OutboxItem]:
    with Session(app.engine) as session:
        return {row.id or 0: row for row in session.exec(select(OutboxItem))}


def test_421_451_and_550_become_retry_retry_and_failed(services: Services, smtp_app: App) -> None:
    ok = queue(smtp_app, "seeker@elsewhere.test")
    busy = Path(services["SMTP_CONTROL"]) / "421"
    busy.touch()
    try:
        send_all(smtp_app)
    finally:
        busy.unlink()
    after_421 = rows(smtp_app)[ok]
    assert (after_421.state, after_421.attempts) == ("queued", 1)
    assert "421" in after_421.last_error
    retry_at = after_421.next_attempt_at
    assert (retry_at if retry_at.tzinfo else retry_at.replace(tzinfo=UTC)) > now(), "retried later, with backoff"

    later = queue(smtp_app, "tempfail451@example.test")
    refused = queue(smtp_app, "fail550@example.test")
    with Session(smtp_app.engine) as session:
        row = session.get(OutboxItem, ok)
        assert row is not None
        row.next_attempt_at = now()  # its retry is due
        session.add(row)
        session.commit()
    sent, not_sent = send_all(smtp_app)
    result = rows(smtp_app)
    assert (sent, not_sent) == (1, 2)
    assert result[ok].state == "sent"
    assert len(received(services, result[ok].message_id)) == 1, "the retry went out once, with the same Message-ID"
    assert (result[later].state, result[later].attempts) == ("queued", 1) and "451" in result[later].last_error
    assert result[refused].state == "failed" and "550 5.1.1 Mailbox unavailable" in result[refused].last_error


def test_xoauth2_runs_the_token_command_and_names_it_when_refused(services: Services, tmp_path: Path) -> None:
    marker = tmp_path / "token-asked"
    smtp = outbox(services, tmp_path, auth="xoauth2", oauth2_token_command=f"sh -c 'touch {marker}; echo ya29.token'")
    with pytest.raises(DeliveryError, match=r"OAuth2 token.*\[outgoing\] username and oauth2_token_command"):
        smtp.send(mail("seeker@elsewhere.test"))
    assert marker.exists()


def peers_of(services: Services, message_ids: list[str]) -> list[str]:
    """The client address and port each message came in on, as the server logged it."""
    log = services.sink_log()
    peers = []
    for message_id in message_ids:
        [(name, _)] = received(services, message_id)
        peers.append(re.search(r"(\('127\.0\.0\.1', \d+\)): accepted .* as " + re.escape(name), log).group(1))  # type: ignore[union-attr]
    return peers


@pytest.mark.parametrize("connections", [1, 3])
def test_the_background_sender_sends_everything_once_over_its_connections(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connections: int
) -> None:
    """A backlog's replies go side by side over `[outgoing] connections`, each email once;
    at the end of a pass the sender leases and sends what is left, a lease at a time,
    leaving nothing for the one-by-one send step."""
    from mailflow import sending

    path = services.settings_ini(tmp_path, incoming={"backend": "maildir", "path": "inbox"},
                                 outgoing={"connections": str(connections)})  # fmt: skip
    app = build_app(load_settings(path))
    monkeypatch.setattr(sending, "HAND_OVER_BATCH", 4)  # several leases for 24 emails
    try:
        ids = [queue(app, f"seeker+{n}@elsewhere.test") for n in range(24)]
        sender = sending.BackgroundSender(app)
        sender.finish()
        assert (sender.sent, sender.failed) == (24, 0)
        assert send_all(app) == (0, 0), "nothing left over"
    finally:
        app.close()
    sent = rows(app)
    assert {sent[n].state for n in ids} == {"sent"}
    peers = peers_of(services, [sent[n].message_id for n in ids])  # each received exactly once
    assert len(set(peers)) == connections


@pytest.mark.parametrize("value", ["0", "9", "many"])
def test_connections_out_of_range_names_the_setting(services: Services, tmp_path: Path, value: str) -> None:
    path = services.settings_ini(tmp_path, incoming={"backend": "maildir", "path": "inbox"},
                                 outgoing={"connections": value})  # fmt: skip
    with pytest.raises(ConfigError, match=r"\[outgoing\] connections (must be between 1 and 8|must be a whole)"):
        build_app(load_settings(path))
