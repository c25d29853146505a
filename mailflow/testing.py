"""Helpers for tests and for trying mailflow out: settings in a folder, messages as files."""

from __future__ import annotations

import configparser
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent

DEFAULTS: dict[str, dict[str, str]] = {
    "mailflow": {
        "from_address": "interview@jobseekers.example",
        "from_name": "The Job-Seeker's Interview",
        "host_address": "host@jobseekers.example",
        "site_name": "The Job-Seeker's Interview",
        "secret_file": "db/secret.key",
        "digest": "off",  # tests of other things should not receive digests
    },
    "incoming": {"backend": "maildir", "path": "var/mail/inbox", "poll_seconds": "1"},
    "outgoing": {"backend": "maildir", "path": "var/mail/outbox"},
    "blog": {"backend": "static", "path": "var/site", "base_url": "https://jobseekers.example/"},
    "interview": {"questions": "questions.txt"},
}


def make_settings(
    folder: Path,
    *,
    database: str = "sqlite:///db/mailflow.db",
    core: str = "",
    incoming: str = "",
    outgoing: str = "",
    blog: str = "",
) -> Path:
    """Write a runnable settings.ini (and the default questions) into `folder`; return its path.

    Each keyword holds "key = value" lines that add to or override that section's
    defaults, e.g. core="max_replies_per_day = 2".
    """
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "questions.txt", folder / "questions.txt")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict(DEFAULTS)
    parser["mailflow"]["database"] = database
    for section, extra in (("mailflow", core), ("incoming", incoming), ("outgoing", outgoing), ("blog", blog)):
        for line in extra.splitlines():
            key, separator, value = line.partition("=")
            if separator:
                parser[section][key.strip()] = value.strip()
    path = folder / "settings.ini"
    with path.open("w", encoding="utf-8") as handle:
        parser.write(handle)
    path.chmod(0o600)
    return path


def load_eml(name: str) -> bytes:
    """A realistic message from tests/mail/."""
    return (REPO / "tests" / "mail" / name).read_bytes()


def make_reply(
    answers: dict[int, str],
    *,
    sender: str = "Alex Example <alex@example.net>",
    questions: tuple[str, ...] = (),
    message_id: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """A plain-text inline reply, as Thunderbird writes one: quoted questions, answers below."""
    lines = ["On 12/11/2026 09:14, The Job-Seeker's Interview wrote:", "> Hello,", ">"]
    for number, question in enumerate(questions, start=1):
        lines.append(f"> {number}. {question}")
        lines.append(answers.get(number, ""))
        lines.append(">")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "interview@jobseekers.example"
    message["Subject"] = "Re: The Job-Seeker's Interview: your questions"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id or make_msgid(domain="example.net")
    message["In-Reply-To"] = "<questionnaire.1@jobseekers.example>"
    for key, value in (extra_headers or {}).items():
        message[key] = value
    message["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.4.0"
    message.set_content("\n".join(lines) + "\n")
    return message.as_bytes()


def make_request(
    sender: str = "seeker@example.test",
    to: str = "jobs@example.test",
    subject: str = "Interview?",
    body: str = "Hello, I would like to take part in the interview.\n",
    *,
    name: str = "Sam Seeker",
    message_id: str | None = None,
) -> bytes:
    """A first message from a person: no answers, they want the questionnaire."""
    message = EmailMessage()
    message["From"] = f"{name} <{sender}>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id or make_msgid(idstring=uuid.uuid4().hex[:8], domain="client.example.test")
    message.set_content(body)
    return message.as_bytes()


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, step: float = 0.05) -> T:
    """Ask `predicate` until it answers something true or `timeout` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


@contextmanager
def fresh_postgres_database(server_url: str, prefix: str = "mailflow_t") -> Iterator[str]:
    """A new, empty PostgreSQL database on the server at `server_url`; dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
