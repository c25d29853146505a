"""A Micropub endpoint (W3C Recommendation, https://www.w3.org/TR/micropub/): one h-entry per interview.

    [blog] backend = micropub, endpoint, token (or token_command), post_url;
    optional format (json | form), categories, slug_pattern, review, withdraw, timeout.

The post's URL is its id. Micropub has no lookup by slug, so exactly-once rests on two
things: the post is created with `mp-slug`, and `post_url` (for example
https://blog.example/{slug}/) says where the server puts such a post; before creating, that
URL is asked for with `q=source`, and a post already there is updated instead. When the
server's Location differs from post_url, a warning says so: fix post_url, or a retry after
a lost answer could create a second post.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from mailflow.config import Section
from mailflow.errors import ConfigError, PublishError
from mailflow.pages import CommentView, InterviewPage, SiteInfo
from mailflow.publishers import Placement, PublisherEnv, Remember
from mailflow.publishers.http import PostNaming, make_client, send, short_reason, split_names
from mailflow.render import Renderer

logger = logging.getLogger(__name__)

BLOG = "The Micropub endpoint"


@dataclass(frozen=True)
class MicropubSettings:
    endpoint: str
    token: str
    post_url: str
    form: bool
    categories: tuple[str, ...]
    naming: PostNaming
    review: bool
    withdraw: str

    @classmethod
    def from_section(cls, section: Section) -> MicropubSettings:
        post_url = section.text("post_url")
        if "{slug}" not in post_url:
            raise ConfigError(
                f"{section.where('post_url')} must say where your server puts a post made with mp-slug, "
                "with {slug} in it, e.g. https://blog.example/{slug}/."
            )
        return cls(
            endpoint=section.text("endpoint"),
            token=section.secret("token"),
            post_url=post_url,
            form=section.choice("format", ("json", "form"), "json") == "form",
            categories=split_names(section, "categories"),
            naming=PostNaming.from_section(section),
            review=section.flag("review", False),
            withdraw=section.choice("withdraw", ("trash", "draft"), "trash"),
        )


@dataclass
class MicropubPublisher:
    pages_per_batch: ClassVar[int] = 20
    settings: MicropubSettings
    renderer: Renderer
    site: SiteInfo
    client: httpx.Client

    @classmethod
    def from_section(cls, section: Section, env: PublisherEnv, client: httpx.Client | None = None) -> MicropubPublisher:
        return cls(MicropubSettings.from_section(section), env.renderer, env.site, make_client(section, client))

    def permalink(self, number: int) -> str:
        """See `Publisher.permalink`: the server has the last word, so it is known after publishing."""
        return ""

    def publish(self, page: InterviewPage, remote_id: str, remember: Remember | None = None) -> Placement:
        """See `Publisher.publish`."""
        slug = self.settings.naming.slug(page.number)
        html = self.renderer.page("post_body.html", page=page, site=self.site, invitation=True, comments_in_post=True)
        url = remote_id or self._existing(self.settings.post_url.format(slug=slug))
        if url:
            if remember is not None and not remote_id:
                remember(url)
            if self._update(url, page, html):
                return Placement(url, url)
        url = self._create(page, slug, html)
        if remember is not None:
            remember(url)
        return Placement(url, url)

    def unpublish(self, remote_id: str) -> None:
        """See `Publisher.unpublish`: the delete action, or post-status draft (a common extension)."""
        if not remote_id:
            return
        if self.settings.withdraw == "trash":
            response = self._post(self._action("delete", remote_id))
        else:
            response = self._post(json={"action": "update", "url": remote_id, "replace": {"post-status": ["draft"]}})
        if response.status_code != 400:  # invalid_request: no such post (or deleted already)
            self._ok(response, "withdraw the post")

    def publish_comment(self, post_remote_id: str, comment: CommentView | None, remote_id: str) -> str:
        """See `Publisher.publish_comment`. Micropub's way would be a reply h-entry with
        in-reply-to: a separate post in the host's own feed, under the host's name, for every
        comment. Approved comments are part of the post's content instead (comments_in_post),
        where readers of the interview see them, updated whenever they change."""
        return ""

    def refresh_listing(self, pages: Sequence[InterviewPage], total: int) -> None:
        """See `Publisher.refresh_listing`: the site keeps its own listing."""

    def check(self) -> list[str]:
        """For `mailflow doctor`: ask the endpoint for its configuration (q=config) with the token."""
        self._ok(self._request("GET", params={"q": "config"}), "answer q=config")
        return [
            f"{self.settings.endpoint} accepted [blog] token",
            f"interview 00007 would go to {self.settings.post_url.format(slug=self.settings.naming.slug(7))}",
        ]

    def _properties(self, page: InterviewPage, html: str) -> dict[str, list[Any]]:
        properties: dict[str, list[Any]] = {
            "name": [page.title],
            "content": [{"html": html}],
            "published": [f"{page.date_iso}T00:00:00Z"],  # the day only, never the time of day
        }
        if self.settings.categories:
            properties["category"] = list(self.settings.categories)
        return properties

    def _create(self, page: InterviewPage, slug: str, html: str) -> str:
        status = "draft" if self.settings.review else "published"
        if self.settings.form:  # form-encoded has no HTML content; the server receives the markup as text
            data: dict[str, str | list[str]] = {
                "h": "entry", "name": page.title, "content": html, "published": f"{page.date_iso}T00:00:00Z",
            }  # fmt: skip
            if self.settings.categories:
                data["category[]"] = list(self.settings.categories)
            response = self._post(data={**data, "mp-slug": slug, "post-status": status})
        else:
            properties = {**self._properties(page, html), "mp-slug": [slug], "post-status": [status]}
            response = self._post(json={"type": ["h-entry"], "properties": properties})
        self._ok(response, "create the post")
        location = response.headers.get("Location", "")
        if response.status_code not in (201, 202) or not location:
            raise PublishError(
                f"{BLOG} answered HTTP {response.status_code} without a Location for the new post; "
                "check [blog] endpoint.",
                permanent=True,
            )
        location = str(response.url.join(location))
        expected = self.settings.post_url.format(slug=slug)
        if location != expected:
            logger.warning(
                "interview %s: the server put the post at %s, not at [blog] post_url %s; fix post_url "
                "or a retry after a lost answer could post twice",
                page.number_text,
                location,
                expected,
            )
        return location

    def _update(self, url: str, page: InterviewPage, html: str) -> bool:
        """Replace the post's name, content and categories; False if the server has no such post."""
        replace = self._properties(page, html)
        if not self.settings.review:
            replace["post-status"] = ["published"]
        response = self._post(json={"action": "update", "url": url, "replace": replace})
        if response.status_code == 400 and self._post(self._action("undelete", url)).is_success:
            response = self._post(json={"action": "update", "url": url, "replace": replace})
        if response.status_code == 400:
            return False  # gone for good: create it again
        self._ok(response, "update the post")
        return True

    def _existing(self, url: str) -> str:
        """`url` if the server has a post there (q=source), else ''."""
        response = self._request("GET", params={"q": "source", "url": url, "properties[]": "name"})
        if response.status_code in (400, 404):
            return ""
        self._ok(response, "look the post up")
        return url

    def _action(self, action: str, url: str) -> dict[str, Any]:
        if self.settings.form:
            return {"data": {"action": action, "url": url}}
        return {"json": {"action": action, "url": url}}

    def _post(self, action: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        return self._request("POST", **(action or {}), **kwargs)

    def _request(self, method: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.settings.token}", "Accept": "application/json"}
        return send(self.client, BLOG, method, self.settings.endpoint, headers=headers, **kwargs)

    def _ok(self, response: httpx.Response, doing: str) -> None:
        if response.is_success:
            return
        raise self._refusal(response, doing)

    def _refusal(self, response: httpx.Response, doing: str) -> PublishError:
        status, reason = response.status_code, short_reason(response)
        try:
            error = response.json().get("error", "")
        except (ValueError, AttributeError):
            error = ""
        if error == "insufficient_scope":
            return PublishError(
                f"{BLOG} says [blog] token may not {doing}{reason}: issue a token with the create, update and "
                "delete scopes.",
                permanent=True,
            )
        if status in (401, 403):
            return PublishError(
                f"{BLOG} refused [blog] token ({error or status}{reason}): check [blog] token.", permanent=True
            )
        return PublishError(f"{BLOG} would not {doing} (HTTP {status}{reason}): check [blog] endpoint.", permanent=True)
