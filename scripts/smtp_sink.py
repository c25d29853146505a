"""A recording SMTP server for mailflow's test suite.

The sink accepts mail on two ports: one plain port that offers STARTTLS (optional) and
one implicit-TLS port.  AUTH PLAIN and AUTH LOGIN are offered on both, also without TLS,
but authentication is never required.

Every accepted message is:

* written byte-for-byte into ``<maildir>/new/`` (via ``tmp/`` and an atomic rename), and
  recorded with one line ``<filename>\\t<mail_from>\\t<rcpt>,<rcpt>...`` appended to the
  envelopes file once the message file is in place;
* delivered over LMTP (one transaction per recipient) to every recipient in the local
  domain (``example.test`` by default), so that the recipient can read it over IMAP.  A
  failing LMTP delivery is logged and does not fail the SMTP transaction.

Both happen before the ``250`` reply to DATA, so a client that has finished sending can
look for the message at once.

Fault injection, driven by the test suite:

* a recipient whose local part starts with ``fail550`` is refused at RCPT with ``550``;
* a recipient whose local part starts with ``tempfail451`` is refused at RCPT with ``451``;
* while ``<control>/421`` exists every new connection is greeted with ``421`` and closed;
* while ``<control>/hang`` exists, the reply to DATA is delayed by the number of seconds
  written in that file (an empty or unreadable file means one hour).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import signal
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

log = logging.getLogger("smtp_sink")

REPLY_OK = "250 2.0.0 OK"
REPLY_RCPT_OK = "250 2.1.5 OK"
REPLY_MAILBOX_UNAVAILABLE = "550 5.1.1 Mailbox unavailable"
REPLY_TRY_AGAIN = "451 4.3.0 Try again later"
REPLY_SERVICE_UNAVAILABLE = b"421 4.3.2 Service not available\r\n"
HANG_DEFAULT_SECONDS = 3600.0


@dataclass(frozen=True)
class SinkConfig:
    """Everything the sink needs to know, taken from the command line."""

    host: str
    port: int
    tls_port: int
    cert_file: Path
    key_file: Path
    maildir: Path
    envelopes: Path
    control_dir: Path
    user: str
    password: str
    lmtp_host: str
    lmtp_port: int
    local_domain: str
    hostname: str


class Maildir:
    """A minimal Maildir writer that never alters the bytes it is given."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._counter = itertools.count(1)
        self._hostname = socket.gethostname().replace("/", "_").replace(":", "_")
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def _unique_name(self) -> str:
        now = time.time()
        seconds = int(now)
        micros = int((now - seconds) * 1_000_000)
        return f"{seconds}.M{micros:06d}P{os.getpid()}Q{next(self._counter)}.{self._hostname}"

    def store(self, content: bytes) -> str:
        """Write ``content`` to ``new/`` and return the file name."""
        name = self._unique_name()
        tmp_path = self.root / "tmp" / name
        with open(tmp_path, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp_path, self.root / "new" / name)
        return name


def append_line(path: Path, line: str) -> None:
    """Append one line with a single write, so readers never see half a line."""
    data = (line + "\n").encode("utf-8", errors="surrogateescape")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def local_part(address: str) -> str:
    """Return the part of ``address`` before the last ``@`` (the whole string if none)."""
    return address.rpartition("@")[0] if "@" in address else address


def domain_of(address: str) -> str:
    """Return the lower-cased domain of ``address`` ('' if it has none)."""
    return address.rpartition("@")[2].lower() if "@" in address else ""


def deliver_lmtp(
    host: str, port: int, mail_from: str, rcpt: str, content: bytes, smtputf8: bool = False,
) -> None:
    """Deliver one message to one recipient over LMTP; raise on any failure.

    One recipient per transaction keeps the LMTP reply handling simple: LMTP answers DATA
    once per accepted recipient, which smtplib only reads correctly for a single one.
    """
    with smtplib.LMTP(host, port, timeout=30) as client:
        options = ["SMTPUTF8"] if smtputf8 else []
        refused = client.sendmail(mail_from, [rcpt], content, mail_options=options)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)


class SinkHandler:
    """aiosmtpd handler: fault injection at RCPT, recording and relaying at DATA."""

    def __init__(self, config: SinkConfig) -> None:
        self.config = config
        self.maildir = Maildir(config.maildir)
        config.envelopes.parent.mkdir(parents=True, exist_ok=True)
        config.envelopes.touch(exist_ok=True)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Refuse the fault-injection addresses, accept everything else."""
        local = local_part(address).lower()
        if local.startswith("fail550"):
            log.info("%s: RCPT %s refused with 550 (fault injection)", session.peer, address)
            return REPLY_MAILBOX_UNAVAILABLE
        if local.startswith("tempfail451"):
            log.info("%s: RCPT %s refused with 451 (fault injection)", session.peer, address)
            return REPLY_TRY_AGAIN
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return REPLY_RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Optionally hang, then record the message and relay it to local recipients."""
        delay = self._hang_seconds()
        if delay > 0:
            log.info("%s: hanging %.1f s before answering DATA", session.peer, delay)
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                # aiosmtpd cancels the handler when the client disconnects.
                log.info("%s: client went away while hanging; message dropped", session.peer)
                raise
            if server.transport is None or server.transport.is_closing():
                log.info("%s: client went away while hanging; message dropped", session.peer)
                return REPLY_TRY_AGAIN

        content = envelope.original_content or b""
        mail_from = envelope.mail_from or ""
        rcpts = list(envelope.rcpt_tos)
        name = self.maildir.store(content)
        append_line(self.config.envelopes, f"{name}\t{mail_from}\t{','.join(rcpts)}")
        log.info(
            "%s: accepted %d bytes from <%s> to %s as %s",
            session.peer, len(content), mail_from, rcpts, name,
        )

        for rcpt in rcpts:
            if domain_of(rcpt) != self.config.local_domain:
                continue
            try:
                await asyncio.to_thread(
                    deliver_lmtp,
                    self.config.lmtp_host, self.config.lmtp_port, mail_from, rcpt, content,
                    envelope.smtp_utf8,
                )
                log.info("LMTP delivery of %s to %s done", name, rcpt)
            except Exception as exc:  # noqa: BLE001 - the SMTP side must accept regardless
                log.error("LMTP delivery of %s to %s failed: %r", name, rcpt, exc)
        return REPLY_OK

    def _hang_seconds(self) -> float:
        """Seconds to wait before answering DATA: 0 unless ``<control>/hang`` exists."""
        path = self.config.control_dir / "hang"
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return 0.0
        except OSError:
            return HANG_DEFAULT_SECONDS
        try:
            return max(0.0, float(text)) if text else HANG_DEFAULT_SECONDS
        except ValueError:
            log.warning("control file %s holds %r, not a number; hanging %s s",
                        path, text, HANG_DEFAULT_SECONDS)
            return HANG_DEFAULT_SECONDS


class Authenticator:
    """Accept exactly one user name and password for AUTH PLAIN and AUTH LOGIN."""

    def __init__(self, user: str, password: str) -> None:
        self._user = user.encode()
        self._password = password.encode()

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self._user
            and auth_data.password == self._password
        )
        login = getattr(auth_data, "login", b"?")
        if ok:
            log.info("%s: AUTH %s succeeded for %r", session.peer, mechanism, login)
            return AuthResult(success=True, auth_data=auth_data)
        log.info("%s: AUTH %s failed for %r", session.peer, mechanism, login)
        # handled=False makes aiosmtpd answer 535 itself; True would leave the client waiting.
        return AuthResult(success=False, handled=False)


class RefuseProtocol(asyncio.Protocol):
    """Greets with 421 and closes: used while the ``421`` control file exists."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        log.info("%s: refused with 421 (fault injection)", transport.get_extra_info("peername"))
        transport.write(REPLY_SERVICE_UNAVAILABLE)
        transport.close()


def make_server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """Server-side TLS context for both STARTTLS and implicit TLS."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def protocol_factory(
    config: SinkConfig,
    handler: SinkHandler,
    authenticator: Authenticator,
    starttls_context: ssl.SSLContext | None,
) -> asyncio.Protocol:
    """Build the protocol for one new connection, honouring the ``421`` control file."""
    if (config.control_dir / "421").exists():
        return RefuseProtocol()
    return SMTP(
        handler,
        hostname=config.hostname,
        tls_context=starttls_context,
        require_starttls=False,
        auth_required=False,
        auth_require_tls=False,
        authenticator=authenticator,
        enable_SMTPUTF8=True,
        decode_data=False,
    )


async def serve(config: SinkConfig) -> None:
    """Run both listeners until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    context = make_server_context(config.cert_file, config.key_file)
    handler = SinkHandler(config)
    authenticator = Authenticator(config.user, config.password)
    config.control_dir.mkdir(parents=True, exist_ok=True)

    plain = await loop.create_server(
        lambda: protocol_factory(config, handler, authenticator, context),
        host=config.host, port=config.port, reuse_address=True,
    )
    implicit = await loop.create_server(
        lambda: protocol_factory(config, handler, authenticator, None),
        host=config.host, port=config.tls_port, ssl=context, reuse_address=True,
    )
    log.info("listening on %s:%d (STARTTLS) and %s:%d (implicit TLS)",
             config.host, config.port, config.host, config.tls_port)

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping")
    for server in (plain, implicit):
        server.close()
    for server in (plain, implicit):
        await server.wait_closed()


def parse_args(argv: list[str] | None = None) -> tuple[SinkConfig, Path | None]:
    """Parse the command line into a SinkConfig and an optional log file path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="plain port with STARTTLS")
    parser.add_argument("--tls-port", type=int, required=True, help="implicit TLS port")
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    parser.add_argument("--envelopes", type=Path, required=True)
    parser.add_argument("--control-dir", type=Path, required=True)
    parser.add_argument("--user", default="mailflow")
    parser.add_argument("--password", default="smtp-password")
    parser.add_argument("--lmtp-host", default="127.0.0.1")
    parser.add_argument("--lmtp-port", type=int, required=True)
    parser.add_argument("--local-domain", default="example.test")
    parser.add_argument("--hostname", default="sink.example.test")
    parser.add_argument("--log-file", type=Path)
    args = parser.parse_args(argv)
    config = SinkConfig(
        host=args.host, port=args.port, tls_port=args.tls_port,
        cert_file=args.cert, key_file=args.key,
        maildir=args.maildir, envelopes=args.envelopes, control_dir=args.control_dir,
        user=args.user, password=args.password,
        lmtp_host=args.lmtp_host, lmtp_port=args.lmtp_port,
        local_domain=args.local_domain.lower(), hostname=args.hostname,
    )
    return config, args.log_file


def main(argv: list[str] | None = None) -> None:
    """Entry point: configure logging and serve until told to stop."""
    config, log_file = parse_args(argv)
    logging.basicConfig(
        filename=log_file,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
