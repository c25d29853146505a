"""Recognising the same sender again without keeping who they are: a keyed hash.

The key lives in a file the host keeps private (created on first run); without it the
hashes cannot be reversed by guessing addresses.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


def load_or_create_secret(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_hex(32).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(value + b"\n")
        return value


def sender_hash(secret: bytes, address: str) -> str:
    return hmac.new(secret, address.strip().lower().encode(), hashlib.sha256).hexdigest()
