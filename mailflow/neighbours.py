"""Workers of one installation on one machine. Each holds a slot, a locked file, while its
pass runs, so that a worker can tell how many share this machine's cores: it starts a
process of its own to read ahead (background_reading.py) only where a core is spare. Two
workers on two cores each reading ahead would only take turns on the same cores, and each
reads messages the other decides."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SLOTS = 64  # more workers than this on one machine share the last count


@contextmanager
def present(folder: Path) -> Iterator[None]:
    """Hold the first free slot in `folder` until the block ends (or the process does)."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(SLOTS):
        try:
            fd = os.open(folder / f"{number}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # another user's slot (a worker once run as root, say): not ours to take
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield
        finally:
            os.close(fd)
        return
    yield


def workers_here(folder: Path) -> int:
    """How many workers hold a slot now, this one included."""
    held = 0
    for path in folder.glob("*.lock"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:  # not ours to read: count it, the safe side (no second process)
            held += 1
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: two workers' probes do not collide
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            held += 1
        finally:
            os.close(fd)
    return held


def spare_core(folder: Path) -> bool:
    """Fewer workers here than cores this process may run on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return workers_here(folder) < cores
