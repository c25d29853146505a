"""Local delivery into a Maildir, the way an MTA does it: write to tmp/, rename into new/."""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path


def deliver_to_maildir(maildir: Path, raw: bytes) -> Path:
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns() // 1000}.M{uuid.uuid4().hex[:12]}.{socket.gethostname().replace('/', '_')}"
    temporary = maildir / "tmp" / name
    with open(temporary, "wb") as handle:
        handle.write(raw)
        handle.flush()
        os.fsync(handle.fileno())
    target = maildir / "new" / name
    os.replace(temporary, target)
    return target
