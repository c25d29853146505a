"""The real servers on loopback (started by scripts/test-services), as the benchmarks use them.

Reads var/services/env like the test suite does. Seeding a folder goes by MULTIAPPEND in
batches (one APPEND per message runs at ~250/s; a batch of 200 is ~10x faster). Replies
are recognised at the SMTP sink by their recipient, read from the sink's envelopes file.
"""

from __future__ import annotations

import shlex
import smtplib
import ssl
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

from mailflow import testing

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / "var" / "services" / "env"
USER, PASSWORD = "jobs@example.test", "jobs-password"
APPEND_BATCH = 200


class ServicesDown(RuntimeError):
    pass


@dataclass(frozen=True)
class Servers:
    env: dict[str, str]

    def __getitem__(self, name: str) -> str:
        return self.env[f"MAILFLOW_TEST_{name}"]

    # -- IMAP ----------------------------------------------------------------------------

    def imap(self) -> IMAPClient:
        context = ssl.create_default_context(cafile=self["CA_FILE"])
        client = IMAPClient(self["IMAP_HOST"], int(self["IMAPS_PORT"]), ssl=True, ssl_context=context, timeout=30)
        client.login(USER, PASSWORD)
        return client

    def fresh_folder(self, prefix: str = "bench") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        with self.imap() as client:
            client.create_folder(name)
        return name

    def seed(self, folder: str, messages: Iterable[bytes]) -> int:
        """Put `messages` into `folder` in MULTIAPPEND batches; returns how many."""
        count, batch = 0, []
        with self.imap() as client:
            for raw in messages:
                batch.append(raw)
                if len(batch) >= APPEND_BATCH:
                    client.multiappend(folder, batch)
                    count, batch = count + len(batch), []
            if batch:
                client.multiappend(folder, batch)
                count += len(batch)
        return count

    def append(self, client: IMAPClient, folder: str, raw: bytes) -> None:
        client.append(folder, raw)

    def folder_counts(self, *folders: str) -> dict[str, int]:
        with self.imap() as client:
            return {
                folder: int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])
                if client.folder_exists(folder)
                else 0
                for folder in folders
            }

    def drop_folders(self, folder: str) -> None:
        """Delete `folder` and everything under it (Done/Ignored), so runs do not pile up mail."""
        with self.imap() as client:
            names = [name for _, _, name in client.list_folders(folder)]
            for name in sorted(names, key=len, reverse=True):
                try:
                    client.delete_folder(name)
                except Exception:  # noqa: BLE001 - best effort cleanup
                    pass

    # -- SMTP ----------------------------------------------------------------------------

    def smtp(self) -> smtplib.SMTP:
        """The same kind of connection mailflow's SmtpOutbox opens: implicit TLS, logged in."""
        context = ssl.create_default_context(cafile=self["CA_FILE"])
        client = smtplib.SMTP_SSL(self["SMTP_HOST"], int(self["SMTPS_PORT"]), timeout=30, context=context)
        client.ehlo()
        client.login(self["SMTP_USER"], self["SMTP_PASSWORD"])
        return client

    def envelopes_size(self) -> int:
        return Path(self["SMTP_ENVELOPES"]).stat().st_size

    def discard_since(self, offset: int) -> int:
        """Delete the message files the sink accepted after byte `offset` of its envelopes:
        a run sends some 30,000 emails, and a sink that keeps them all slows every later
        run (and every test that looks through what it received). Returns how many."""
        new = Path(self["SMTP_MAILDIR"]) / "new"
        names = [name for name, _ in self.recipients_since(offset)]
        for name in names:
            (new / name).unlink(missing_ok=True)
        return len(names)

    def recipients_since(self, offset: int) -> Iterator[tuple[str, list[str]]]:
        """(file name, recipients) of every message the sink accepted after byte `offset` of its log."""
        with open(self["SMTP_ENVELOPES"], "rb") as handle:
            handle.seek(offset)
            data = handle.read()
        for line in data.decode("utf-8", "replace").splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                yield parts[0], parts[2].split(",")

    # -- settings ------------------------------------------------------------------------

    def settings_ini(
        self, folder_path: Path, *, imap_folder: str, database: str = "sqlite:///db/mailflow.db", incoming: str = ""
    ) -> Path:
        """A complete settings.ini: IMAPS in as jobs@, SMTPS out to the sink, a static site."""
        # var/ made here: on PostgreSQL worker.record_pass writes var/last-pass.json without
        # creating var/ (only SQLite's run lock creates it), and the pass ends with FileNotFoundError.
        (folder_path / "var").mkdir(parents=True, exist_ok=True)
        (folder_path / "questions.txt").write_text((ROOT / "questions.txt").read_text())
        text_ = f"""\
[mailflow]
database = {database}
from_address = jobs@example.test
host_address = host@example.test
secret_file = db/secret.key
digest = off

[incoming]
backend = imap
host = {self["IMAP_HOST"]}
port = {self["IMAPS_PORT"]}
tls = ssl
ca_file = {self["CA_FILE"]}
username = {USER}
password = {PASSWORD}
folder = {imap_folder}
done_folder = {imap_folder}/Done
ignored_folder = {imap_folder}/Ignored
poll_seconds = 600
{incoming}

[outgoing]
backend = smtp
host = {self["SMTP_HOST"]}
port = {self["SMTPS_PORT"]}
tls = ssl
ca_file = {self["CA_FILE"]}
username = {self["SMTP_USER"]}
password = {self["SMTP_PASSWORD"]}

[blog]
backend = static
path = site
base_url = http://localhost:8000/

[interview]
questions = questions.txt
"""
        path = folder_path / "settings.ini"
        path.write_text(text_)
        return path


@contextmanager
def fresh_postgres_database(servers: Servers) -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server; dropped afterwards."""
    with testing.fresh_postgres_database(servers["POSTGRES_URL"], prefix="mailflow_bench") as url:
        yield url


def read_env() -> dict[str, str]:
    env: dict[str, str] = {}
    if not ENV_FILE.is_file():
        raise ServicesDown(f"{ENV_FILE} is missing: run scripts/test-services start")
    for line in ENV_FILE.read_text().splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def connect() -> Servers:
    """The running servers, or ServicesDown saying what to start."""
    import socket

    servers = Servers(read_env())
    for name in ("IMAPS_PORT", "SMTPS_PORT", "POSTGRES_PORT"):
        try:
            with socket.create_connection(("127.0.0.1", int(servers[name])), timeout=2):
                pass
        except (OSError, KeyError, ValueError):
            raise ServicesDown(f"{name} is not answering: run scripts/test-services start") from None
    return servers
