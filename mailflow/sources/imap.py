"""A real mailbox over IMAP as the incoming source: fetch what is new by UID, then file it.

    [incoming] backend = imap, host, port, username, password | password_command,
               tls = ssl | starttls | none, ca_file, verify, auth = password | xoauth2,
               oauth2_token_command, folder, idle, filing = move | flag,
               done_folder, ignored_folder, batch_size, state_file, timeout

Keys are `imap:<folder>:<uidvalidity>:<uid>`. The last UID known to be stored is kept
per folder, with its UIDVALIDITY, in a small JSON file (`state_file`). It moves forward
only when a message is filed (the worker files only stored rows) or when a complete
pass found nothing to hand over, so a crash never skips a message; fetching one twice is
harmless because the worker keys rows by source key. When UIDVALIDITY changes, every
message is looked at again and only those whose Message-ID `known_ids` does not
recognise are handed over. Messages are read with BODY.PEEK[], so nothing is marked read
before it is stored. Longer than most modules: connection care (reconnect with backoff,
IDLE) belongs with the protocol it guards.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from mailflow.config import Section
from mailflow.errors import ConfigError, SourceError
from mailflow.files import write_atomically
from mailflow.sources import IncomingMail
from mailflow.tls import (
    ServerSettings,
    describe_connection_error,
    is_setting_problem,
    read_server_settings,
    refused_login_message,
    run_secret_command,
)

logger = logging.getLogger(__name__)

KEYWORDS = {"done": "$MailflowDone", "ignored": "$MailflowIgnored"}
IGNORED_OUTCOMES = frozenset({"ignored", "failed"})
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0)
RESCAN_ALL = -1  # a re-scan has begun; its end is the highest UID its first pass sees
IDLE_MAX_SECONDS = 25 * 60  # servers may end IDLE after 29 minutes (RFC 2177)
CONNECTION_ERRORS = (OSError, IMAPClientAbortError)
_MSGID = re.compile(rb"<[^<>\s]+>")
T = TypeVar("T")


@dataclass(frozen=True)
class ImapSettings:
    server: ServerSettings
    auth: str
    oauth2_token_command: str | None
    folder: str
    idle: bool
    filing: str
    done_folder: str
    ignored_folder: str
    batch_size: int
    state_file: Path

    @classmethod
    def from_section(cls, section: Section) -> ImapSettings:
        auth = section.choice("auth", ("password", "xoauth2"), "password")
        server = read_server_settings(section, {"ssl": 993, "starttls": 143, "none": 143})
        if auth == "xoauth2" and not section.optional("oauth2_token_command"):
            raise ConfigError(f"{section.where('auth')} = xoauth2 needs {section.where('oauth2_token_command')}.")
        batch_size = section.integer("batch_size", 100)
        if batch_size < 1:
            raise ConfigError(f"{section.where('batch_size')} must be 1 or more.")
        return cls(
            server=server,
            auth=auth,
            oauth2_token_command=section.optional("oauth2_token_command"),
            folder=section.text("folder", "INBOX"),
            idle=section.flag("idle", False),
            filing=section.choice("filing", ("move", "flag"), "move"),
            done_folder=section.text("done_folder", "Interviews/Done"),
            ignored_folder=section.text("ignored_folder", "Interviews/Ignored"),
            batch_size=batch_size,
            state_file=section.path("state_file", "db/imap-state.json"),
        )


def open_imap(settings: ImapSettings) -> IMAPClient:
    """Connect, secure and log in; every failure becomes a SourceError naming the setting to fix."""
    server = settings.server
    try:
        client = IMAPClient(
            server.host, server.port, ssl=server.tls == "ssl", ssl_context=server.ssl_context(), timeout=server.timeout
        )
        if server.tls == "starttls":
            if not client.has_capability("STARTTLS"):
                raise SourceError(
                    f"{server.host}:{server.port} does not offer STARTTLS: check {server.where('tls')} and port."
                )
            client.starttls(server.ssl_context())
    except CONNECTION_ERRORS as exc:
        text = describe_connection_error(exc, server) or f"Cannot connect to {server.host}: {exc}"
        if is_setting_problem(exc):
            raise SourceError(text) from None  # retrying cannot help: the host must change a setting
        raise ConnectionFailed(text) from exc
    client.normalise_times = False
    try:
        if settings.auth == "xoauth2":
            token = run_secret_command(settings.oauth2_token_command or "", server.where("oauth2_token_command"))
            client.oauth2_login(server.username, token)
        else:
            client.login(server.username, server.secret())
    except LoginError as exc:
        _logout(client)
        if settings.auth == "xoauth2":
            raise SourceError(
                f"The mail server refused the OAuth2 token ({_text(exc)}): check [incoming] username and oauth2_token_command."
            ) from None
        raise SourceError(refused_login_message(server, _text(exc))) from None
    except ConfigError:
        _logout(client)
        raise
    return client


class ConnectionFailed(SourceError):
    """The server could not be reached (worth retrying); a refused login is a plain SourceError."""


class FolderReset(SourceError):
    """The folder's UIDVALIDITY changed while we were using it."""


class ImapSource:
    """See `Source`. `connect` opens a logged-in client (tests may hand their own)."""

    def __init__(
        self,
        settings: ImapSettings,
        connect: Callable[[ImapSettings], IMAPClient] = open_imap,
        known_ids: Callable[[set[str], str], set[str]] = lambda message_ids, current: set(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.connect = connect
        # The Message-IDs already stored but for rows keyed under `current` (this folder's
        # UIDVALIDITY now: those are known by UID, and a second delivery of one message is a
        # message of its own); asked only after UIDVALIDITY changed.
        self.known_ids = known_ids
        self.sleep = sleep
        self.state = UidState(settings.state_file)
        self._client: IMAPClient | None = None
        self._selected: tuple[str, int] | None = None  # (folder, uidvalidity) on this connection
        self._delimiter = "/"
        self._created: set[str] = set()
        self._handed_over = 0  # highest UID handed over in this process, for wait_for_mail

    @classmethod
    def from_section(cls, section: Section) -> ImapSource:
        return cls(ImapSettings.from_section(section))

    # -- fetch ---------------------------------------------------------------------------

    def fetch(self) -> Iterator[IncomingMail]:
        """See `Source.fetch`."""
        folder = self.settings.folder
        self._selected = None  # select afresh: a new pass must see a reset folder's new UIDVALIDITY
        validity = self._call(folder, lambda client: self._select(client, folder))
        last, rescan_until = self.state.start(folder, validity)
        uids = self._call(folder, lambda client: self._new_uids(client, last), validity)
        if rescan_until == RESCAN_ALL:
            rescan_until = self.state.limit_rescan(folder, uids[-1] if uids else 0)
        first_handed = None
        for chunk in _chunks(uids, self.settings.batch_size):
            checked = [uid for uid in chunk if uid <= rescan_until]
            skip = self._known(folder, validity, checked) if checked else set()
            wanted = [uid for uid in chunk if uid not in skip]
            if not wanted:
                continue
            data = self._call(folder, _fetching(wanted, [b"BODY.PEEK[]", b"INTERNALDATE"]), validity)
            for uid in wanted:
                if uid not in data:
                    continue  # expunged meanwhile by another client
                first_handed = first_handed or uid
                self._handed_over = max(self._handed_over, uid)
                yield IncomingMail(
                    key=f"imap:{folder}:{validity}:{uid}", raw=data[uid][b"BODY[]"], arrived_at=_utc(data[uid])
                )
        if uids:
            self.state.advance(folder, validity, (first_handed - 1) if first_handed else uids[-1])

    def _new_uids(self, client: IMAPClient, last: int) -> list[int]:
        criteria: list[Any] = ["UID", f"{last + 1}:*"]
        if self.settings.filing == "flag":
            criteria += ["UNKEYWORD", KEYWORDS["done"], "UNKEYWORD", KEYWORDS["ignored"]]
        return sorted(uid for uid in client.search(criteria) if uid > last)

    def _known(self, folder: str, validity: int, uids: list[int]) -> set[int]:
        """After a UIDVALIDITY change: the UIDs whose Message-ID is already stored."""
        part = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
        data = self._call(folder, _fetching(uids, [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]), validity)
        message_ids = {}
        for uid, item in data.items():
            found = _MSGID.search(item.get(part, b"")) or None
            message_ids[uid] = (
                found.group(0).decode("ascii", "replace") if found else _header_msgid(item.get(part, b""))
            )
        stored = self.known_ids(
            {message_id for message_id in message_ids.values() if message_id}, f"imap:{folder}:{validity}:"
        )
        known = {uid for uid, message_id in message_ids.items() if message_id in stored}
        if known:
            logger.info(
                "imap %s: %d message(s) already stored before the folder was reset; skipped", folder, len(known)
            )
        return known

    # -- file ----------------------------------------------------------------------------

    def file(self, outcomes: Sequence[tuple[str, str]]) -> None:
        """See `Source.file`. Moves into done_folder / ignored_folder, or flags in place: one
        command per folder and kind for the whole batch."""
        batches: dict[tuple[str, int, str], list[int]] = {}
        for key, outcome in outcomes:
            folder, validity, uid = parse_key(key)
            batches.setdefault((folder, validity, "ignored" if outcome in IGNORED_OUTCOMES else "done"), []).append(uid)
        for (folder, validity, kind), uids in batches.items():
            try:
                self._call(folder, partial(self._file, uids=uids, kind=kind), validity)
            except FolderReset:
                # The UIDs mean nothing now; the re-scan recognises the messages by their Message-ID.
                logger.warning(
                    "imap %s: %d message(s) from before the folder was reset; left in place", folder, len(uids)
                )
                continue
            self.state.advance(folder, validity, max(uids))
            logger.debug("imap %s: %d UID(s) filed (%s)", folder, len(uids), kind)

    def _file(self, client: IMAPClient, uids: list[int], kind: str) -> None:
        if self.settings.filing == "flag":
            client.add_flags(uids, [b"\\Seen", KEYWORDS[kind].encode()])
            return
        target = self._folder_name(self.settings.ignored_folder if kind == "ignored" else self.settings.done_folder)
        if target not in self._created:
            if not client.folder_exists(target):
                client.create_folder(target)
                client.subscribe_folder(target)
                logger.info("imap: created folder %s", target)
            self._created.add(target)
        if client.has_capability("MOVE"):
            client.move(uids, target)
            return
        client.copy(uids, target)
        client.delete_messages(uids)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        else:
            client.expunge()

    # -- push ----------------------------------------------------------------------------

    def supports_idle(self) -> bool:
        """True if the server offers IDLE (asked once per connection)."""
        return bool(self._call(self.settings.folder, lambda client: client.has_capability("IDLE")))

    def wait_for_mail(self, timeout: float, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Wait in IDLE until new mail arrives (True) or `timeout` passes (False).

        IDLE is ended at the latest after 25 minutes, so the caller re-issues it before
        the server's 29-minute limit. On a connection problem it logs one line, waits
        briefly and returns True, so the caller runs a pass (which reconnects).
        """
        deadline = time.monotonic() + min(timeout, IDLE_MAX_SECONDS)
        try:
            client = self._connected()
            self._select(client, self.settings.folder)
            last = max(self.state.last(self.settings.folder), self._handed_over)
            if self._new_uids(client, last):
                return True  # arrived between the last pass and now
            client.idle()
            try:
                while time.monotonic() < deadline and not should_stop():
                    responses = client.idle_check(timeout=min(1.0, max(deadline - time.monotonic(), 0.01)))
                    if any(isinstance(r, tuple) and len(r) > 1 and r[1] == b"EXISTS" for r in responses):
                        return True
            finally:
                client.idle_done()
        except (*CONNECTION_ERRORS, IMAPClientError, SourceError) as exc:
            self._drop()
            logger.warning(
                "imap %s: waiting for new mail failed (%s); checking the mailbox instead",
                self.settings.server.host,
                exc,
            )
            self.sleep(min(5.0, max(deadline - time.monotonic(), 0)))
            return True
        return False

    # -- doctor --------------------------------------------------------------------------

    def check(self) -> list[str]:
        """For `mailflow doctor`: connect once (no retries), log in, open the folders."""
        server, settings = self.settings.server, self.settings
        client = self.connect(settings)
        self._client, self._delimiter = client, _delimiter(client)
        security = {"ssl": "TLS", "starttls": "STARTTLS", "none": "no encryption"}[server.tls]
        if server.tls != "none":
            security += ", certificate verified" if server.verify else ", certificate NOT verified"
        found = [f"connected to {server.host}:{server.port} ({security}) and logged in as {server.username}"]
        self._select(client, settings.folder)
        count = len(client.search(["ALL"]))
        found.append(f"folder {settings.folder!r} opened: {count} message(s)")
        if settings.filing == "move":
            for name in (settings.done_folder, settings.ignored_folder):
                state = "exists" if client.folder_exists(self._folder_name(name)) else "will be created on first use"
                found.append(f"folder {name!r} {state}")
        if settings.idle:
            found.append(
                "IDLE offered: new mail is seen within seconds"
                if client.has_capability("IDLE")
                else "the server does not offer IDLE: [incoming] idle falls back to polling"
            )
        return found

    # -- connection ----------------------------------------------------------------------

    def close(self) -> None:
        """See `Source.close`."""
        if self._client is not None:
            _logout(self._client)
        self._drop()

    def _drop(self) -> None:
        self._client, self._selected = None, None

    def _connected(self) -> IMAPClient:
        if self._client is None:
            self._client = self.connect(self.settings)
            self._delimiter = _delimiter(self._client)
        return self._client

    def _select(self, client: IMAPClient, folder: str) -> int:
        name = self._folder_name(folder)
        if self._selected and self._selected[0] == name:
            return self._selected[1]
        try:
            info = client.select_folder(name)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            raise SourceError(
                f"The folder {folder!r} cannot be opened ({_text(exc)}): check [incoming] folder."
            ) from None
        self._selected = (name, int(info[b"UIDVALIDITY"]))
        return self._selected[1]

    def _call(self, folder: str, operation: Callable[[IMAPClient], T], validity: int | None = None) -> T:
        """Run `operation` with `folder` selected. If the connection drops (or cannot be made),
        reconnect with backoff and run it again; one log line says so. If the folder was
        reset meanwhile (its UIDVALIDITY is no longer `validity`), raise FolderReset."""
        first: BaseException | None = None
        for tries, delay in enumerate((0.0, *RECONNECT_DELAYS)):
            if delay:
                self.sleep(delay)
            try:
                client = self._connected()
                current = self._select(client, folder)
                if validity is not None and current != validity:
                    raise FolderReset(f"The folder {folder!r} was reset (new UIDVALIDITY); the next pass re-scans it.")
                result = operation(client)
            except (*CONNECTION_ERRORS, ConnectionFailed) as exc:
                self._drop()
                first = first or exc
                error: BaseException = exc
                continue
            except IMAPClientError as exc:  # a NO or BAD answer: the worker expects a SourceError
                raise SourceError(f"The mail server refused a request on folder {folder!r}: {_text(exc)}") from None
            if first is not None:
                server = self.settings.server
                logger.warning(
                    "imap %s:%s: connection lost (%s); reconnected after %d tries",
                    server.host,
                    server.port,
                    _text(first),
                    tries,
                )
            return result
        raise SourceError(
            f"Lost the connection to the mail server {self.settings.server.host}:{self.settings.server.port} "
            f"({_text(error)}) and could not reconnect; the next pass will try again."
        )

    def _folder_name(self, folder: str) -> str:
        return folder if self._delimiter == "/" else folder.replace("/", self._delimiter)


class UidState:
    """Per folder: UIDVALIDITY, the last UID known to be stored, and up to which UID a re-scan
    must match by Message-ID. A small JSON file, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.folders: dict[str, dict[str, int]] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.folders = {}
        except (OSError, ValueError) as exc:
            logger.warning("imap state %s unreadable (%s); re-scanning by Message-ID", path, exc)
            self.folders = {}

    def last(self, folder: str) -> int:
        return self.folders.get(folder, {}).get("last_uid", 0)

    def start(self, folder: str, validity: int) -> tuple[int, int]:
        """(last UID stored, re-scan limit) for a pass; begins a re-scan if UIDVALIDITY changed."""
        entry = self.folders.get(folder)
        if entry is None or entry.get("uidvalidity") != validity:
            if entry is not None:
                logger.warning(
                    "imap %s: UIDVALIDITY changed (%s -> %s); re-scanning, matching by Message-ID",
                    folder,
                    entry.get("uidvalidity"),
                    validity,
                )
            entry = {"uidvalidity": validity, "last_uid": 0, "rescan_until": RESCAN_ALL}
            self.folders[folder] = entry
            self._save()
        return entry["last_uid"], entry.get("rescan_until", 0)

    def limit_rescan(self, folder: str, top: int) -> int:
        self.folders[folder]["rescan_until"] = top
        self._save()
        return top

    def advance(self, folder: str, validity: int, uid: int) -> None:
        entry = self.folders.get(folder)
        if entry is None or entry.get("uidvalidity") != validity or uid <= entry["last_uid"]:
            return
        entry["last_uid"] = uid
        self._save()

    def _save(self) -> None:
        write_atomically(self.path, json.dumps(self.folders, indent=1, sort_keys=True), mode=0o600)


def parse_key(key: str) -> tuple[str, int, int]:
    folder, validity, uid = key.removeprefix("imap:").rsplit(":", 2)
    return folder, int(validity), int(uid)


def _fetching(uids: list[int], parts: list[bytes]) -> Callable[[IMAPClient], dict[int, dict[bytes, Any]]]:
    return lambda client: client.fetch(uids, parts)  # type: ignore[no-any-return]


def _chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _utc(item: dict[bytes, Any]) -> datetime:
    stamp = item.get(b"INTERNALDATE")
    if not isinstance(stamp, datetime):
        return datetime.now(UTC)
    return stamp.astimezone(UTC) if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _header_msgid(header: bytes) -> str:
    return str(BytesHeaderParser().parsebytes(header).get("Message-ID", "")).strip()


def _delimiter(client: IMAPClient) -> str:
    try:
        listed = client.list_folders("", "")
    except IMAPClientError:
        return "/"
    raw = listed[0][1] if listed else b"/"
    return (raw.decode() if isinstance(raw, bytes) else raw) or "/"


def _text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.removeprefix("b'").removeprefix('b"').rstrip("'\"")


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except (*CONNECTION_ERRORS, IMAPClientError):
        try:
            client.shutdown()
        except OSError:
            pass
