"""How mailflow reaches a mail server: address, TLS, credentials, and errors a host can act on.

Shared by the IMAP source, the SMTP outbox and `mailflow doctor`. Settings (in
[incoming] or [outgoing]):

    host, port                     the server; port defaults by tls (993/143, 465/587)
    tls = ssl | starttls | none    none only for a server on this machine (loopback)
    ca_file                        your own CA's certificate, to verify the server with
    verify = yes | no              no turns certificate checks off (warned about)
    username, password             or password_command: a command printing the password
    timeout                        seconds to wait for the server (default 60)
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from mailflow.config import Section, run_secret_command
from mailflow.errors import ConfigError

logger = logging.getLogger(__name__)

TLS_MODES = ("ssl", "starttls", "none")
COMMAND_TIMEOUT = 30


@dataclass(frozen=True)
class ServerSettings:
    """Where a mail server is and how to talk to it safely; errors name `section`'s keys."""

    section: str
    host: str
    port: int
    tls: str
    ca_file: Path | None
    verify: bool
    username: str
    password: str | None
    password_command: str | None
    timeout: float

    def where(self, *keys: str) -> str:
        return f"[{self.section}] " + " and ".join(keys)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The context for TLS, or None for tls = none."""
        if self.tls == "none":
            return None
        if not self.verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        try:
            return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{self.where('ca_file')} = {self.ca_file} cannot be read as a certificate ({exc})."
            ) from None

    def secret(self) -> str:
        """The password, from the setting or by running password_command."""
        if self.password_command:
            return run_secret_command(self.password_command, self.where("password_command"))
        if self.password is None:
            raise ConfigError(f"Please set {self.where('password')} (or password_command) in your settings file.")
        return self.password


def read_server_settings(
    section: Section, default_ports: dict[str, int], *, login_required: bool = True
) -> ServerSettings:
    """Read and check the connection keys of `section`; warn about anything unsafe."""
    host = section.text("host")
    tls = section.choice("tls", TLS_MODES, "ssl")
    if tls == "none":
        if not is_loopback(host):
            raise ConfigError(
                f"{section.where('tls')} = none would send your password unencrypted to {host}; "
                "it is only allowed for a server on this machine. Use ssl or starttls."
            )
        logger.warning(
            "%s = none: talking to %s without encryption (allowed on loopback only)", section.where("tls"), host
        )
    verify = section.flag("verify", True)
    if not verify and tls != "none":
        logger.warning(
            "%s = no: the server's certificate is not checked; anyone in between could read your mail",
            section.where("verify"),
        )
    ca_file = section.path("ca_file") if section.optional("ca_file") else None
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"{section.where('ca_file')} = {ca_file}: no such file.")
    username = section.text("username") if login_required else section.text("username", "")
    return ServerSettings(
        section=section.name,
        host=host,
        port=section.integer("port", default_ports[tls]),
        tls=tls,
        ca_file=ca_file,
        verify=verify,
        username=username,
        password=section.optional("password"),
        password_command=section.optional("password_command"),
        timeout=section.number("timeout", 60.0),
    )


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def describe_connection_error(exc: BaseException, server: ServerSettings) -> str | None:
    """Plain words, naming the setting to check, for the ways reaching a server fails; None if unknown."""
    where = f"{server.host}:{server.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"The certificate of the mail server {where} could not be verified ({exc.verify_message}). "
            f"If it uses its own certificate authority, set {server.where('ca_file')} to that CA's certificate; "
            f"also check that {server.where('host')} is the name on the certificate."
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"The secure connection to {where} failed ({exc.reason or exc}). Check {server.where('tls')} "
            f"and port: ssl is for ports like 993 and 465, starttls for 143 and 587."
        )
    if isinstance(exc, socket.gaierror):
        return f"The mail server name {server.host!r} could not be found: check {server.where('host')}."
    if isinstance(exc, ConnectionRefusedError):
        return f"Nothing answers at {where}: check {server.where('host', 'port')}."
    if isinstance(exc, TimeoutError | socket.timeout):
        return (
            f"The mail server {where} did not answer within {server.timeout:g} s: check {server.where('host', 'port')}."
        )
    if isinstance(exc, OSError):
        return f"Cannot reach the mail server {where} ({exc.strerror or exc}): check {server.where('host', 'port')}."
    return None


def is_setting_problem(exc: BaseException) -> bool:
    """A failure that retrying cannot fix: an unknown host name or a TLS mismatch (not a cut connection)."""
    if isinstance(exc, socket.gaierror | ssl.SSLCertVerificationError):
        return True
    return isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError)


def refused_login_message(server: ServerSettings, detail: str = "") -> str:
    extra = f" ({detail})" if detail else ""
    keys = "username and password" if not server.password_command else "username and password_command"
    return f"The mail server refused the username or password{extra}: check [{server.section}] {keys}."
