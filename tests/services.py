"""The real servers started by scripts/test-services, for the IMAP/SMTP tests.

Reads var/services/env (or the MAILFLOW_TEST_* variables if already exported). Without
the servers a test is skipped with the reason, except under CI=true, where it fails:
CI must never pass by skipping the real servers.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

from service_env import service_env, unavailable

ROOT = Path(__file__).resolve().parent.parent
PASSWORDS = {"jobs": "jobs-password", "host": "host-password", "seeker": "seeker-password"}


@dataclass(frozen=True)
class Services:
    """`envelopes_from`, `log_from`: where the sink's envelopes and log stood when this test
    run began. Only what it accepted since is looked at: a development machine's sink keeps
    everything earlier runs and the benchmarks sent (hundreds of thousands of messages)."""

    env: dict[str, str]
    envelopes_from: int = 0
    log_from: int = 0

    def __getitem__(self, name: str) -> str:
        return self.env[f"MAILFLOW_TEST_{name}"]

    @property
    def host(self) -> str:
        return self["IMAP_HOST"]

    def imap(self, user: str = "jobs", *, ssl: bool = True) -> IMAPClient:
        """A verified IMAPS client logged in as user@example.test."""
        import ssl as ssl_module

        context = ssl_module.create_default_context(cafile=self["CA_FILE"])
        client = IMAPClient(self.host, int(self["IMAPS_PORT"]), ssl=True, ssl_context=context, timeout=10)
        client.login(f"{user}@example.test", PASSWORDS[user])
        return client

    def fresh_folder(self, user: str = "jobs") -> str:
        """A new, empty folder: one per test keeps tests apart."""
        name = f"t-{uuid.uuid4().hex[:10]}"
        with self.imap(user) as client:
            client.create_folder(name)
        return name

    def append(self, folder: str, raw: bytes, user: str = "jobs") -> None:
        with self.imap(user) as client:
            client.append(folder, raw)

    def doveadm(self, *args: str) -> str:
        done = subprocess.run(
            ["doveadm", "-c", self["DOVECOT_CONF"], *args], capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, f"doveadm {shlex.join(args)}: {done.stderr}"
        return done.stdout

    def sink_envelopes(self) -> list[tuple[str, str, list[str]]]:
        lines = _read_from(Path(self["SMTP_ENVELOPES"]), self.envelopes_from).splitlines()
        return [
            (name, sender, rcpts.split(",")) for name, sender, rcpts in (line.split("\t") for line in lines if line)
        ]

    def sink_log(self) -> str:
        return _read_from(Path(self["SMTP_LOG"]), self.log_from)

    def sink_message(self, name: str) -> bytes:
        return (Path(self["SMTP_MAILDIR"]) / "new" / name).read_bytes()

    def sink_messages_to(self, address: str) -> list[bytes]:
        return [self.sink_message(name) for name, _, rcpts in self.sink_envelopes() if address in rcpts]

    def incoming(self, **values: str) -> dict[str, str]:
        """[incoming] keys for jobs@'s mailbox on Dovecot, over IMAPS."""
        return {
            "backend": "imap", "host": self.host, "port": self["IMAPS_PORT"], "tls": "ssl",
            "ca_file": self["CA_FILE"], "username": "jobs@example.test", "password": PASSWORDS["jobs"], **values,
        }  # fmt: skip

    def outgoing(self, **values: str) -> dict[str, str]:
        """[outgoing] keys for the SMTP sink, over SMTPS."""
        return {
            "host": self["SMTP_HOST"], "port": self["SMTPS_PORT"], "tls": "ssl", "ca_file": self["CA_FILE"],
            "username": self["SMTP_USER"], "password": self["SMTP_PASSWORD"], **values,
        }  # fmt: skip

    def settings_ini(self, tmp_path: Path, *, incoming: dict[str, str], outgoing: dict[str, str]) -> Path:
        """A complete settings.ini in tmp_path: IMAP in as jobs@, SMTP out, static site, SQLite."""
        (tmp_path / "questions.txt").write_text((ROOT / "questions.txt").read_text())
        sections = {
            "mailflow": {
                "database": "sqlite:///db/mailflow.db",
                "from_address": "jobs@example.test",
                "host_address": "host@example.test",
                "secret_file": "db/secret.key",
                "digest": "off",
            },
            "incoming": self.incoming(poll_seconds="60", **incoming),
            "outgoing": {"backend": "smtp", **self.outgoing(**outgoing)},
            "blog": {"backend": "static", "path": "site", "base_url": "http://localhost:8000/"},
            "interview": {"questions": "questions.txt"},
        }
        text = "".join(
            f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in values.items()) + "\n"
            for name, values in sections.items()
        )
        path = tmp_path / "settings.ini"
        path.write_text(text)
        return path


def _answers(host: str, port: str) -> bool:
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def require_services() -> Services:
    env = service_env()
    missing = [
        name
        for name in ("IMAP_PORT", "IMAPS_PORT", "SMTP_PORT", "SMTPS_PORT")
        if not _answers(env.get("MAILFLOW_TEST_IMAP_HOST", "127.0.0.1"), env.get(f"MAILFLOW_TEST_{name}", ""))
    ]
    if missing:
        unavailable(f"real mail servers not running ({', '.join(missing)} not answering)")
    sizes = [_size(env.get(f"MAILFLOW_TEST_{name}", "")) for name in ("SMTP_ENVELOPES", "SMTP_LOG")]
    return Services(env, *sizes)


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size if path else 0
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", "replace")
