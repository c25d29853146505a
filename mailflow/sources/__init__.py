"""Where incoming mail comes from: the Source protocol and the registry of backends.

[incoming] backend = maildir | imap
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mailflow.config import Section, choose_backend


@dataclass(frozen=True)
class IncomingMail:
    """One message as the mailbox holds it; `key` is stable across passes and restarts."""

    key: str
    raw: bytes
    arrived_at: datetime


class Source(Protocol):
    def fetch(self) -> Iterator[IncomingMail]:
        """Yield the messages not yet filed, oldest first, without marking or moving any.

        The caller stores each one (and commits) before it calls `file`; a message seen
        again after a crash is recognised by its key, so fetching twice is harmless.
        """
        ...

    def file(self, outcomes: Sequence[tuple[str, str]]) -> None:
        """Move or mark the mailbox copies of stored rows: (key, inbound state) pairs, the
        state saying where a copy goes (numbered, ignored, ...). Many at once, since a
        server does a batch in one command. Idempotent: filing an already-filed key does
        nothing. Raises SourceError when the copies could not be filed; then none count."""
        ...

    def close(self) -> None:
        """Release connections; the source may be used again after this."""
        ...


SourceFactory = Callable[[Section], Source]


def _maildir(section: Section) -> Source:
    from mailflow.sources.maildir import MaildirSource

    return MaildirSource.from_section(section)


def _imap(section: Section) -> Source:
    from mailflow.sources.imap import ImapSource

    return ImapSource.from_section(section)


BACKENDS: dict[str, SourceFactory] = {"maildir": _maildir, "imap": _imap}


def make_source(section: Section) -> Source:
    return choose_backend(section, BACKENDS, "maildir")(section)
