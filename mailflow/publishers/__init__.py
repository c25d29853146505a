"""Where interviews go: the Publisher protocol and the registry of blog backends.

    [blog] backend = static | wordpress | ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mailflow.config import Section
from mailflow.errors import ConfigError
from mailflow.pages import InterviewPage, SiteInfo
from mailflow.render import Renderer


@dataclass(frozen=True)
class Placement:
    """Where a published page lives: the blog's own id for it and its public address."""

    remote_id: str
    url: str


class Publisher(Protocol):
    def permalink(self, number: int) -> str:
        """The page's public address if it can be known before publishing, else ''."""
        ...

    def publish(self, page: InterviewPage, remote_id: str) -> Placement:
        """Create the page, or update it when `remote_id` is set (or the blog already has
        it: a retry after a lost response must never create a second post). Raises
        PublishError (with .permanent for a refusal that retrying will not fix)."""
        ...

    def unpublish(self, remote_id: str) -> None:
        """Take the page down; doing it twice is harmless."""
        ...

    def refresh_listing(self, pages: Sequence[InterviewPage], total: int) -> None:
        """Rewrite what lists the interviews (index, feed), newest first, if this blog
        keeps such pages itself; a hosted blog does this on its own and ignores the call."""
        ...


@dataclass(frozen=True)
class PublisherEnv:
    """What every publisher may use besides its own settings section."""

    renderer: Renderer
    site: SiteInfo


PublisherFactory = Callable[[Section, PublisherEnv], Publisher]


def _static(section: Section, env: PublisherEnv) -> Publisher:
    from mailflow.publishers.static import StaticPublisher

    return StaticPublisher.from_section(section, env)


BACKENDS: dict[str, PublisherFactory] = {"static": _static}


def make_publisher(section: Section, env: PublisherEnv) -> Publisher:
    name = section.text("backend", "static").lower()
    factory = BACKENDS.get(name)
    if factory is None:
        raise ConfigError(f"[blog] backend = {name!r} is not known; use one of: {', '.join(BACKENDS)}.")
    return factory(section, env)
