"""Settings: secrets from the environment or a command, plain errors, a warning for a readable file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from mailflow.config import load_settings
from mailflow.errors import ConfigError
from mailflow.testing import make_settings


def test_secret_comes_from_the_environment_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(make_settings(tmp_path, outgoing="password = from-file"))
    monkeypatch.setenv("MAILFLOW_OUTGOING_PASSWORD", "from-env")
    assert settings.outgoing.secret("password") == "from-env"


def test_secret_from_a_command_takes_its_first_line(tmp_path: Path) -> None:
    settings = load_settings(make_settings(tmp_path, outgoing="password_command = printf 's3cret\\nsecond'"))
    assert settings.outgoing.secret("password") == "s3cret"


def test_a_failing_secret_command_names_the_setting(tmp_path: Path) -> None:
    settings = load_settings(make_settings(tmp_path, outgoing="password_command = false"))
    with pytest.raises(ConfigError, match=r"\[outgoing\] password_command failed"):
        settings.outgoing.secret("password")


def test_a_secret_in_a_file_others_can_read_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = make_settings(tmp_path, outgoing="password = hunter2")
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING):
        assert load_settings(path).outgoing.secret("password") == "hunter2"
    assert "chmod 600" in caplog.text and "hunter2" not in caplog.text
    caplog.clear()
    os.chmod(path, 0o600)
    with caplog.at_level(logging.WARNING):
        load_settings(path).outgoing.secret("password")
    assert caplog.text == ""


@pytest.mark.parametrize(
    "core, message",
    [
        ("complete_ratio = 2", "[mailflow] complete_ratio must be above 0 and at most 1"),
        ("digest = hourly", "[mailflow] digest must be one of daily, weekly, off"),
        ("digest_time = 25:00", "[mailflow] digest_time must be a time of day like 08:00"),
        ("review = perhaps", "[mailflow] review must be yes or no"),
    ],
)
def test_bad_values_are_refused_with_the_key_to_fix(tmp_path: Path, core: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(make_settings(tmp_path, core=core))
    assert message in str(error.value)
