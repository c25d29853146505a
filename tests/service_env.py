"""Coordinates of the real servers started by scripts/test-services (var/services/env)."""

from __future__ import annotations

import os
import shlex

import pytest

from mailflow.testing import REPO

ENV_FILE = REPO / "var" / "services" / "env"


def _load_env_file() -> dict[str, str]:
    values: dict[str, str] = {}
    if ENV_FILE.exists():
        for line in ENV_FILE.read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                key, _, value = line[len("export ") :].partition("=")
                values[key] = " ".join(shlex.split(value)) if value else ""
    return values


def require_env(name: str) -> str:
    """A service coordinate; skips the test when the services are absent (fails under CI=true)."""
    value = os.environ.get(name) or _load_env_file().get(name)
    if value:
        return value
    message = f"{name} is not set: start the test servers with scripts/test-services start (scripts/test does)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
