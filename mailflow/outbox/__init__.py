"""Where outgoing mail goes: the Outbox protocol and the registry of backends.

[outgoing] backend = maildir | smtp
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mailflow.config import ConfigError, Section, choose_backend

MAX_CONNECTIONS = 8


@dataclass(frozen=True)
class OutgoingMail:
    """A rendered email ready to hand over; `message_id` is final and never changes."""

    outbox_id: int
    message_id: str
    sender: str
    recipients: tuple[str, ...]
    raw: bytes


class Outbox(Protocol):
    def send(self, mail: OutgoingMail) -> None:
        """Hand one message over, or raise DeliveryError (with .permanent for a refusal).

        May be called again for the same message after a crash: a backend that can tell
        it already has the message does nothing; otherwise the identical bytes (same
        Message-ID) go out again, which receiving clients treat as one message.
        """
        ...

    def close(self) -> None:
        """End any connection kept open for a batch."""
        ...


OutboxFactory = Callable[[Section, Section | None], Outbox]
"""([outgoing], [incoming]): a backend may file copies through the incoming mailbox."""


def _maildir(section: Section, incoming: Section | None) -> Outbox:
    from mailflow.outbox.maildir import MaildirOutbox

    return MaildirOutbox.from_section(section)


def _smtp(section: Section, incoming: Section | None) -> Outbox:
    from mailflow.outbox.smtp import SmtpOutbox

    return SmtpOutbox.from_section(section, incoming)


BACKENDS: dict[str, OutboxFactory] = {"maildir": _maildir, "smtp": _smtp}


def make_outbox(section: Section, incoming: Section | None = None) -> Outbox:
    connections(section)  # a wrong value is named when the settings are read, not mid-pass
    return choose_backend(section, BACKENDS, "maildir")(section, incoming)


def connections(section: Section) -> int:
    """How many connections the background sender keeps open at once. A mail server answers
    each command of each email in turn, so one connection waits most of the time; several
    send side by side, as mail servers do between themselves. A Maildir has nothing to wait
    for: one."""
    if section.text("backend", "maildir").lower() != "smtp":
        return 1
    count = section.integer("connections", 3)
    if not 1 <= count <= MAX_CONNECTIONS:
        raise ConfigError(
            f"{section.where('connections')} must be between 1 and {MAX_CONNECTIONS} (3 suits most mail servers)."
        )
    return count
