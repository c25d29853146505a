"""A local Maildir as the outbox: every outgoing email lands in new/, for any mail client to open.

File names are derived from the outbox row id, so sending the same row twice (after a
crash between writing the file and recording it sent) writes nothing new.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mailflow.config import Section
from mailflow.errors import DeliveryError
from mailflow.outbox import OutgoingMail


@dataclass
class MaildirOutbox:
    path: Path

    @classmethod
    def from_section(cls, section: Section) -> MaildirOutbox:
        return cls(section.path("path", "var/mail/outbox"))

    def send(self, mail: OutgoingMail) -> None:
        """See `Outbox.send`."""
        name = f"mailflow-{mail.outbox_id:010d}.eml"
        try:
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            if (self.path / "new" / name).exists() or any((self.path / "cur").glob(name + "*")):
                return
            temporary = self.path / "tmp" / name
            with open(temporary, "wb") as handle:
                handle.write(mail.raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path / "new" / name)
        except OSError as exc:
            raise DeliveryError(f"Cannot write to the outbox folder {self.path}: {exc.strerror}.") from exc

    def close(self) -> None:
        """Nothing to release."""
