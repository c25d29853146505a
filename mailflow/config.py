"""The only reader of settings.ini and the environment: turns them into frozen dataclasses.

Every value is checked here, at start-up, so that a mistake is reported once, in plain
words, naming the section and key to change, instead of surfacing later as a crash.
Backends read their own section through `Section` (see sources/, outbox/, publishers/).
"""

from __future__ import annotations

import configparser
import logging
import os
import shlex
import stat
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from mailflow.errors import ConfigError

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_CONFIG = "settings.ini"
CONFIG_ENV = "MAILFLOW_CONFIG"

_TRUE = {"yes", "true", "on", "1"}
_FALSE = {"no", "false", "off", "0"}


@dataclass(frozen=True)
class Section:
    """One section of settings.ini, with typed getters whose errors name the key."""

    name: str
    values: Mapping[str, str]
    base_dir: Path
    settings_file: Path | None = None

    def where(self, key: str) -> str:
        return f"[{self.name}] {key}"

    def text(self, key: str, default: str | None = None) -> str:
        env = os.environ.get(f"MAILFLOW_{self.name.upper()}_{key.upper()}")
        value = env if env is not None else self.values.get(key, default)
        if value is None or value == "":
            if default is not None:
                return default
            raise ConfigError(f"Please set {self.where(key)} in your settings file.")
        return value.strip()

    def optional(self, key: str) -> str | None:
        value = self.text(key, "")
        return value or None

    def integer(self, key: str, default: int) -> int:
        raw = self.text(key, str(default))
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{self.where(key)} must be a whole number, not {raw!r}.") from None

    def number(self, key: str, default: float) -> float:
        raw = self.text(key, str(default))
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{self.where(key)} must be a number, not {raw!r}.") from None

    def flag(self, key: str, default: bool) -> bool:
        raw = self.text(key, "yes" if default else "no").lower()
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise ConfigError(f"{self.where(key)} must be yes or no, not {raw!r}.")

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        raw = self.text(key, default).lower()
        if raw not in choices:
            raise ConfigError(f"{self.where(key)} must be one of {', '.join(choices)}; it is {raw!r}.")
        return raw

    def secret(self, key: str) -> str:
        """A password or token: from the environment (MAILFLOW_<SECTION>_<KEY>), from the
        first line printed by `<key>_command` (a password manager), or from the file itself,
        in that order. Never logged; a file readable by others earns a warning."""
        if os.environ.get(f"MAILFLOW_{self.name.upper()}_{key.upper()}"):
            return self.text(key)
        command = self.optional(f"{key}_command")
        if command:
            return run_secret_command(command, self.where(f"{key}_command"))
        value = self.text(key)
        warn_if_readable_by_others(self.settings_file, self.where(key))
        return value

    def path(self, key: str, default: str | None = None) -> Path:
        """A path; relative paths resolve against the settings file's folder."""
        return resolve_path(self.base_dir, self.text(key, default))


SECRET_COMMAND_TIMEOUT = 30


def run_secret_command(command: str, where: str) -> str:
    """Run a password or token command and return its first output line; errors name `where`."""
    try:
        done = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=SECRET_COMMAND_TIMEOUT, check=False
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"{where} could not be run ({exc}).") from None
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
        raise ConfigError(f"{where} failed ({detail}).")
    value = done.stdout.strip().splitlines()[0].strip() if done.stdout.strip() else ""
    if not value:
        raise ConfigError(f"{where} printed nothing; it should print the secret on its first line.")
    return value


def warn_if_readable_by_others(path: Path | None, where: str) -> None:
    if path is not None and path.exists() and path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        logger.warning(
            "%s holds %s and other users of this machine can read it: run `chmod 600 %s`, or move the "
            "secret to the environment or a *_command setting",
            path,
            where,
            path,
        )


def choose_backend(section: Section, registry: Mapping[str, T], default: str) -> T:
    """The registered backend named by `backend` in this section; an unknown name lists the known ones."""
    name = section.text("backend", default).lower()
    if name not in registry:
        raise ConfigError(f"{section.where('backend')} = {name!r} is not known; use one of: {', '.join(registry)}.")
    return registry[name]


def resolve_path(base_dir: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base_dir / path)


@dataclass(frozen=True)
class CoreSettings:
    """[mailflow]: who we are, where state lives, and the rules for a complete reply."""

    database: str
    database_timeout: float
    from_address: str
    from_name: str
    host_address: str
    site_name: str
    secret_file: Path
    complete_ratio: float
    questionnaire_interval_hours: int
    max_replies_per_day: int
    max_message_bytes: int
    max_answer_chars: int
    log_level: str
    authserv_id: str
    review: bool
    moderate_comments: bool
    retention_days: int
    digest: str
    digest_time: str
    digest_weekday: str


@dataclass(frozen=True)
class InterviewSettings:
    """[interview]: where the host keeps the questions."""

    questions_file: Path


@dataclass(frozen=True)
class Settings:
    """Everything settings.ini says, checked. Backend sections stay raw until their backend reads them."""

    path: Path
    base_dir: Path
    core: CoreSettings
    interview: InterviewSettings
    incoming: Section
    outgoing: Section
    blog: Section
    sections: Mapping[str, Section] = field(default_factory=dict)


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and check a settings file; raise ConfigError with a plain-language message."""
    settings_path = config_path(path).resolve()
    if not settings_path.is_file():
        raise ConfigError(
            f"No settings file at {settings_path}. Copy settings.ini from the mailflow folder "
            f"there, or point --config (or {CONFIG_ENV}) at yours."
        )
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    try:
        parser.read(settings_path, encoding="utf-8")
    except configparser.Error as exc:
        raise ConfigError(f"{settings_path} could not be read: {exc}") from None
    base_dir = settings_path.parent
    sections = {
        name: Section(name, dict(parser[name]) if parser.has_section(name) else {}, base_dir, settings_path)
        for name in {*parser.sections(), "mailflow", "incoming", "outgoing", "blog", "interview"}
    }
    return Settings(
        path=settings_path,
        base_dir=base_dir,
        core=_core_settings(sections["mailflow"]),
        interview=InterviewSettings(sections["interview"].path("questions", "questions.txt")),
        incoming=sections["incoming"],
        outgoing=sections["outgoing"],
        blog=sections["blog"],
        sections=sections,
    )


def _core_settings(section: Section) -> CoreSettings:
    from_address = section.text("from_address")
    if "@" not in from_address:
        raise ConfigError(f"{section.where('from_address')} must be an email address, not {from_address!r}.")
    ratio = section.number("complete_ratio", 0.5)
    if not 0 < ratio <= 1:
        raise ConfigError(f"{section.where('complete_ratio')} must be above 0 and at most 1 (0.5 means half).")
    return CoreSettings(
        database=section.text("database", "sqlite:///db/mailflow.db"),
        database_timeout=section.number("database_timeout", 30),
        from_address=from_address,
        from_name=section.text("from_name", "The Job-Seeker's Interview"),
        host_address=section.text("host_address"),
        site_name=section.text("site_name", "The Job-Seeker's Interview"),
        secret_file=section.path("secret_file", "db/secret.key"),
        complete_ratio=ratio,
        questionnaire_interval_hours=section.integer("questionnaire_interval_hours", 24),
        max_replies_per_day=section.integer("max_replies_per_day", 5),
        max_message_bytes=section.integer("max_message_bytes", 10 * 1024 * 1024),
        max_answer_chars=section.integer("max_answer_chars", 5000),
        log_level=section.text("log_level", "INFO").upper(),
        authserv_id=section.text("authserv_id", "").lower(),
        review=section.flag("review", False),
        moderate_comments=section.flag("moderate_comments", False),
        retention_days=section.integer("retention_days", 30),
        digest=section.choice("digest", ("daily", "weekly", "off"), "daily"),
        digest_time=_clock(section, "digest_time", "08:00"),
        digest_weekday=section.choice("digest_weekday", _WEEKDAYS, "monday"),
    )


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _clock(section: Section, key: str, default: str) -> str:
    value = section.text(key, default)
    hours, _, minutes = value.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60 and len(minutes) == 2):
        raise ConfigError(f"{section.where(key)} must be a time of day like 08:00, not {value!r}.")
    return f"{int(hours):02d}:{minutes}"
