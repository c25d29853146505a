"""Where interviews go: the Publisher protocol and the registry of blog backends.

    [blog] backend = static | wordpress | blogger | micropub

static writes a folder of pages; the others talk to a hosted blog over HTTP (see http.py
for what they share). Every backend renders the interview from the same template.
Comments by email reach WordPress through its comments API; the other blogs show them in
the page (see `Publisher.publish_comment`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from mailflow.config import Section, choose_backend
from mailflow.pages import CommentView, InterviewPage, SiteInfo
from mailflow.render import Renderer


@dataclass(frozen=True)
class Placement:
    """Where a published page lives: the blog's own id for it and its public address."""

    remote_id: str
    url: str


Remember = Callable[[str], None]
"""Called with the blog's id for a post the moment the blog has given it, so the worker
can commit it before anything else can fail (see `Publisher.publish`)."""


class Publisher(Protocol):
    pages_per_batch: ClassVar[int]
    """Pages leased in one transaction and put up one by one: a few for a blog across the
    network (a batch's lease must cover its calls); many for files on this machine."""

    def permalink(self, number: int) -> str:
        """The page's public address if it can be known before publishing, else ''."""
        ...

    def publish(self, page: InterviewPage, remote_id: str, remember: Remember | None = None) -> Placement:
        """Create the page, or update it when `remote_id` is set (or the blog already has
        it: a retry after a lost response must never create a second post, so a backend
        looks the post up by its slug or label before creating one). As soon as the blog
        hands out an id, and before any further call, `remember(id)` is called so the id
        survives a crash in the middle of a multi-step publish. In review mode the post is
        left as a draft for the host. Raises PublishError: .permanent for a refusal that
        retrying will not fix (the message names the setting), and .retry_after (seconds,
        or None) when the blog said how long to wait."""
        ...

    def unpublish(self, remote_id: str) -> None:
        """Take the page down (trash it or turn it back into a draft, per `withdraw`);
        doing it twice, or for a post that is gone, is harmless."""
        ...

    def publish_comment(self, post_remote_id: str, comment: CommentView | None, remote_id: str) -> str:
        """Make the blog show an approved `comment` under the post `post_remote_id`, or, with
        `comment` None, stop showing the one it keeps as `remote_id` (rejected later, or the
        interview withdrawn; gone already is fine). Returns the blog's id for the comment, or
        '' when the blog has none because the page itself shows the comments (the static
        site; Blogger and Micropub, which get them in the post's content). Exactly once, as
        for posts: with `remote_id` empty a backend first looks for a comment it made earlier
        for `comment.key` (a retry after a lost response) before creating one. The
        commenter's address and name never go to the blog: only `comment.byline`. Raises
        PublishError as `publish` does."""
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


def _wordpress(section: Section, env: PublisherEnv) -> Publisher:
    from mailflow.publishers.wordpress import WordPressPublisher

    return WordPressPublisher.from_section(section, env)


def _blogger(section: Section, env: PublisherEnv) -> Publisher:
    from mailflow.publishers.blogger import BloggerPublisher

    return BloggerPublisher.from_section(section, env)


def _micropub(section: Section, env: PublisherEnv) -> Publisher:
    from mailflow.publishers.micropub import MicropubPublisher

    return MicropubPublisher.from_section(section, env)


BACKENDS: dict[str, PublisherFactory] = {
    "static": _static,
    "wordpress": _wordpress,
    "blogger": _blogger,
    "micropub": _micropub,
}


def make_publisher(section: Section, env: PublisherEnv) -> Publisher:
    return choose_backend(section, BACKENDS, "static")(section, env)
