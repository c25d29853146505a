"""A local Maildir as the incoming mailbox: what an MTA (or `mailflow deliver`) drops in new/.

Filing moves a message from new/ to cur/ with the Seen flag, the way a mail client
marks it read, so the host can still open every message in any mail program.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailflow.config import Section
from mailflow.errors import SourceError
from mailflow.sources import IncomingMail

logger = logging.getLogger(__name__)


@dataclass
class MaildirSource:
    path: Path

    @classmethod
    def from_section(cls, section: Section) -> MaildirSource:
        return cls(section.path("path", "var/mail/inbox"))

    def ensure(self) -> None:
        for sub in ("new", "cur", "tmp"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    def fetch(self) -> Iterator[IncomingMail]:
        """See `Source.fetch`. Order: delivery time, then name (names start with a timestamp)."""
        self.ensure()
        entries = []
        try:
            for entry in os.scandir(self.path / "new"):
                if entry.is_file() and not entry.name.startswith("."):
                    entries.append((entry.stat().st_mtime, entry.name))
        except OSError as exc:
            raise SourceError(f"Cannot read the Maildir {self.path}: {exc.strerror}. Check [incoming] path.") from exc
        for mtime, name in sorted(entries):
            try:
                raw = (self.path / "new" / name).read_bytes()
            except FileNotFoundError:
                continue  # filed by another worker meanwhile
            yield IncomingMail(key=self.key_for(name), raw=raw, arrived_at=_utc(mtime))

    @staticmethod
    def key_for(name: str) -> str:
        return "maildir:" + name

    def file(self, outcomes: Sequence[tuple[str, str]]) -> None:
        """See `Source.file`."""
        for key, outcome in outcomes:
            name = key.removeprefix("maildir:")
            try:
                os.replace(self.path / "new" / name, self.path / "cur" / (name.split(":", 1)[0] + ":2,S"))
            except FileNotFoundError:
                continue  # already filed (by us before a crash, or by another worker)
            logger.debug("maildir %s: filed (%s)", name, outcome)

    def close(self) -> None:
        """Nothing to release."""


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
