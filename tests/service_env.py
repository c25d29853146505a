"""Coordinates of the real servers started by scripts/test-services (var/services/env).

The one place tests read them. Without the servers a test is skipped with the reason,
except under CI=true, where it fails: CI must never pass by skipping the real servers.
"""

from __future__ import annotations

import os
import shlex
from typing import NoReturn

import pytest

from mailflow.testing import REPO

ENV_FILE = REPO / "var" / "services" / "env"


def service_env() -> dict[str, str]:
    """var/services/env, read afresh (a `start` rewrites it), with exported variables winning."""
    values: dict[str, str] = {}
    if ENV_FILE.is_file():
        for line in ENV_FILE.read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                key, _, value = line.removeprefix("export ").partition("=")
                values[key] = (shlex.split(value) or [""])[0]
    values.update({key: value for key, value in os.environ.items() if key.startswith("MAILFLOW_TEST_") and value})
    return values


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail under CI=true, saying what is missing and how to start it."""
    message = f"{reason} (start the test servers with scripts/test-services start; scripts/test does)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_env(name: str) -> str:
    """One service coordinate, or skip/fail when the services are absent."""
    value = service_env().get(name)
    if not value:
        unavailable(f"{name} is not set")
    return value
