"""A real mail server as the outbox: each queued email is handed over by SMTP, exactly as stored.

    [outgoing] backend = smtp, host, port, username, password | password_command,
               tls = ssl | starttls | none, ca_file, verify, auth = password | xoauth2,
               oauth2_token_command, timeout, sent_folder

With `sent_folder` set, a copy of each sent email is appended to that IMAP folder over the
[incoming] connection settings, as a mail client keeps one (see SentFolder).

One connection is opened for the first message of a batch and reused until `close()`.
4xx answers and lost connections are DeliveryError(permanent=False), so the worker
retries later with the same bytes and Message-ID; 5xx answers are permanent and carry
the server's own words. When the connection or login itself fails, the rest of the
batch fails at once with the same error instead of knocking on the server again.
"""

from __future__ import annotations

import logging
import re
import smtplib
from collections.abc import Callable
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from mailflow.config import Section
from mailflow.errors import ConfigError, DeliveryError
from mailflow.outbox import OutgoingMail
from mailflow.sources.imap import CONNECTION_ERRORS, ImapSettings, open_imap
from mailflow.tls import (
    ServerSettings,
    describe_connection_error,
    read_server_settings,
    refused_login_message,
    run_secret_command,
)

logger = logging.getLogger(__name__)

_BARE_LF = re.compile(rb"(?<!\r)\n")
DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}


@dataclass(frozen=True)
class SmtpSettings:
    server: ServerSettings
    auth: str = "password"
    oauth2_token_command: str | None = None

    @classmethod
    def from_section(cls, section: Section) -> SmtpSettings:
        # No username means no login: some relays on the same machine accept mail without one.
        server = read_server_settings(section, DEFAULT_PORTS, login_required=False)
        auth = section.choice("auth", ("password", "xoauth2"), "password")
        if auth == "xoauth2" and not section.optional("oauth2_token_command"):
            raise ConfigError(f"{section.where('auth')} = xoauth2 needs {section.where('oauth2_token_command')}.")
        return cls(server, auth, section.optional("oauth2_token_command"))


def _log_in(client: smtplib.SMTP, settings: SmtpSettings) -> None:
    server = settings.server
    if settings.auth == "xoauth2":
        token = run_secret_command(settings.oauth2_token_command or "", server.where("oauth2_token_command"))
        payload = f"user={server.username}\1auth=Bearer {token}\1\1"
        client.auth("XOAUTH2", lambda challenge=None: payload)
    else:
        client.login(server.username, server.secret())


def open_smtp(settings: SmtpSettings) -> smtplib.SMTP:
    """Connect, secure and log in; failures become DeliveryError naming the setting to fix."""
    server = settings.server
    client: smtplib.SMTP | None = None
    try:
        if server.tls == "ssl":
            client = smtplib.SMTP_SSL(server.host, server.port, timeout=server.timeout, context=server.ssl_context())
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
        client.ehlo()
        if server.tls == "starttls":
            if not client.has_extn("starttls"):
                client.close()
                raise DeliveryError(
                    f"{server.host}:{server.port} does not offer STARTTLS: check {server.where('tls')} and port."
                )
            client.starttls(context=server.ssl_context())
            client.ehlo()
        if server.username:
            _log_in(client, settings)
    except ConfigError as exc:  # a password or token command failed: nothing to send with
        if client is not None:
            client.close()
        raise DeliveryError(str(exc)) from None
    except smtplib.SMTPAuthenticationError as exc:
        if settings.auth == "xoauth2":
            raise DeliveryError(
                f"The mail server refused the OAuth2 token ({_reply_text(exc)}): "
                f"check {server.where('username')} and oauth2_token_command."
            ) from None
        raise DeliveryError(refused_login_message(server, _reply_text(exc))) from None
    except smtplib.SMTPNotSupportedError:
        raise DeliveryError(
            f"{server.host}:{server.port} does not offer login on this connection: check {server.where('tls')} "
            f"(most servers allow login only over TLS) or leave {server.where('username')} empty."
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise _refusal(exc, f"The mail server {server.host}:{server.port} did not accept the connection") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(
            describe_connection_error(exc, server) or f"Cannot talk to {server.host}:{server.port} ({exc})."
        ) from None
    return client


class SentFolder:
    """A copy of each sent email in an IMAP folder (e.g. Sent), flagged \\Seen, as a mail client
    keeps one; the folder is created if missing. Best effort: the email has already gone, so a
    copy that cannot be filed is a warning, never a reason to fail or repeat the send. One
    connection per batch; if it cannot be made, the rest of the batch files no copies."""

    def __init__(self, settings: ImapSettings, folder: str, connect: Callable[[ImapSettings], IMAPClient] = open_imap):
        self.settings, self.folder, self.connect = settings, folder, connect
        self._client: IMAPClient | None = None
        self._unreachable = False

    @classmethod
    def from_sections(cls, outgoing: Section, incoming: Section | None) -> SentFolder | None:
        folder = outgoing.text("sent_folder", "")
        if not folder:
            return None
        if incoming is None or incoming.text("backend", "maildir").lower() != "imap":
            raise ConfigError(
                f"{outgoing.where('sent_folder')} = {folder} files a copy of each sent email over IMAP, with the "
                "[incoming] connection settings: it needs [incoming] backend = imap. Otherwise leave it empty."
            )
        return cls(ImapSettings.from_section(incoming), folder)

    def file(self, mail: OutgoingMail) -> None:
        """Append the email's bytes; raises whatever the IMAP server or connection raised."""
        if self._unreachable:
            return
        reused = self._client is not None
        try:
            self._append(mail)
        except CONNECTION_ERRORS:
            self._drop()
            if not reused:
                raise
            self._append(mail)  # the kept connection had gone stale: once more on a fresh one

    def _append(self, mail: OutgoingMail) -> None:
        if self._client is None:
            try:
                client = self.connect(self.settings)
            except Exception:
                self._unreachable = True  # no use knocking again for every email of this batch
                raise
            self._client = client
            if not client.folder_exists(self.folder):
                client.create_folder(self.folder)
                client.subscribe_folder(self.folder)
                logger.info("imap: created folder %s", self.folder)
        self._client.append(self.folder, wire_format(mail.raw), flags=[b"\\Seen"])
        logger.debug("outbox %s: copy filed in %s", mail.outbox_id, self.folder)

    def check(self) -> str:
        """For `mailflow doctor`: log in over IMAP and look for the folder."""
        client = self.connect(self.settings)
        try:
            state = "exists" if client.folder_exists(self.folder) else "will be created on first use"
        finally:
            client.logout()
        return f"a copy of each sent email goes to the IMAP folder {self.folder!r} ({state})"

    def close(self) -> None:
        """End the batch: log out; the next batch connects again."""
        if self._client is not None:
            try:
                self._client.logout()
            except (*CONNECTION_ERRORS, IMAPClientError):
                pass
        self._drop()
        self._unreachable = False

    def _drop(self) -> None:
        self._client = None


class SmtpOutbox:
    """See `Outbox`. `connect` opens a logged-in client (tests may hand their own)."""

    def __init__(
        self,
        settings: SmtpSettings,
        connect: Callable[[SmtpSettings], smtplib.SMTP] = open_smtp,
        sent_folder: SentFolder | None = None,
    ) -> None:
        self.settings = settings
        self.connect = connect
        self.sent_folder = sent_folder
        self._client: smtplib.SMTP | None = None
        self._broken: DeliveryError | None = None  # why this batch cannot connect

    @classmethod
    def from_section(cls, section: Section, incoming: Section | None = None) -> SmtpOutbox:
        return cls(SmtpSettings.from_section(section), sent_folder=SentFolder.from_sections(section, incoming))

    def send(self, mail: OutgoingMail) -> None:
        """See `Outbox.send`. A connection kept from an earlier message may have gone stale:
        then the message is tried once more on a fresh one."""
        reused = self._client is not None
        try:
            self._send(mail)
        except _Disconnected as exc:
            if not reused:
                raise DeliveryError(str(exc)) from None
            logger.info("smtp: kept connection was closed by the server; opening a new one")
            try:
                self._send(mail)
            except _Disconnected as again:
                raise DeliveryError(str(again)) from None
        if self.sent_folder is not None:
            self._file_copy(self.sent_folder, mail)

    def _file_copy(self, sent_folder: SentFolder, mail: OutgoingMail) -> None:
        try:
            sent_folder.file(mail)
        except Exception as exc:  # noqa: BLE001  (sent is sent: nothing after it may fail or repeat the send)
            logger.warning("outbox %s: sent, but no copy filed in %s (%s)", mail.outbox_id, sent_folder.folder, exc)

    def _send(self, mail: OutgoingMail) -> None:
        client = self._connection()
        try:
            refused = client.sendmail(mail.sender, list(mail.recipients), wire_format(mail.raw))
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = _worst(exc.recipients)
            raise DeliveryError(
                f"The mail server refused the recipient: {code} {text}", permanent=code >= 500
            ) from None
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:
                self._discard()  # 421 means the server is closing this connection
            raise _refusal(exc, "The mail server refused the message") from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._discard()
            raise _Disconnected(
                f"The connection to the mail server was lost while sending ({exc or type(exc).__name__})."
            ) from None
        if refused:  # accepted for some recipients: sending again would duplicate it for them
            logger.warning("outbox %s: sent, but refused for %d recipient(s)", mail.outbox_id, len(refused))
        logger.debug("outbox %s: handed to %s", mail.outbox_id, self.settings.server.host)

    def _connection(self) -> smtplib.SMTP:
        if self._broken is not None:
            raise self._broken
        if self._client is None:
            try:
                self._client = self.connect(self.settings)
            except DeliveryError as exc:
                self._broken = exc
                raise
        return self._client

    def _discard(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except OSError:
                pass
        self._client = None

    def check(self) -> list[str]:
        """For `mailflow doctor`: connect and log in, send nothing."""
        server = self.settings.server
        client = self._connection()
        client.noop()
        security = {"ssl": "TLS", "starttls": "STARTTLS", "none": "no encryption"}[server.tls]
        if server.tls != "none":
            security += ", certificate verified" if server.verify else ", certificate NOT verified"
        login = f"logged in as {server.username}" if server.username else "no login ([outgoing] username is empty)"
        found = [f"connected to {server.host}:{server.port} ({security}); {login}"]
        return found + ([self.sent_folder.check()] if self.sent_folder is not None else [])

    def close(self) -> None:
        """See `Outbox.close`. Ends the batch: the next send connects again."""
        if self._client is not None:
            try:
                self._client.quit()
            except (smtplib.SMTPException, OSError):
                pass
        self._discard()
        self._broken = None
        if self.sent_folder is not None:
            self.sent_folder.close()


def wire_format(raw: bytes) -> bytes:
    """The stored bytes with CRLF line ends, as SMTP requires: smtplib sends bytes unchanged,
    and servers refuse bare LF (aiosmtpd: "500 Line too long"; Postfix: smtpd_forbid_bare_newline)."""
    return _BARE_LF.sub(b"\r\n", raw)


class _Disconnected(Exception):
    """The connection went away; worth one retry on a fresh connection."""


def _refusal(exc: smtplib.SMTPResponseException, what: str) -> DeliveryError:
    return DeliveryError(f"{what}: {exc.smtp_code} {_reply_text(exc)}", permanent=exc.smtp_code >= 500)


def _worst(recipients: dict[str, tuple[int, bytes]]) -> tuple[int, str]:
    """Permanent only when every recipient was refused for good."""
    answers = sorted(recipients.values(), key=lambda answer: answer[0])
    code, text = answers[0]
    return code, text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _reply_text(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
