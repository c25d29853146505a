"""Blogger through its API v3, with an OAuth 2.0 refresh token: one post per interview.

    [blog] backend = blogger, blog_id, client_id, client_secret, refresh_token (or _command);
    optional token_url, api_url, labels, slug_pattern, review, withdraw, timeout.

Blogger chooses a post's address from its title, so the key for exactly-once is a label
(`interview-00007`, from slug_pattern): a post is inserted as a draft carrying it, its id is
handed to `remember` at once, and only then published. Before any insert the label is
looked up in every status (posts.list), so a retry after a lost answer finds the draft.
The access token is refreshed when it runs out or the API answers 401, once per call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from mailflow.config import Section
from mailflow.errors import PublishError
from mailflow.pages import CommentView, InterviewPage, SiteInfo
from mailflow.publishers import Placement, PublisherEnv, Remember
from mailflow.publishers.http import (
    PostNaming,
    existing_post,
    json_body,
    make_client,
    send,
    short_reason,
    split_names,
)
from mailflow.render import Renderer

logger = logging.getLogger(__name__)

BLOG = "Blogger"
TOKEN_SERVICE = "Google's token endpoint"
EXPIRY_MARGIN = 60.0  # refresh a minute early rather than send a token that dies in flight
CREDENTIALS = "[blog] client_id, client_secret and refresh_token"


@dataclass(frozen=True)
class BloggerSettings:
    blog_id: str
    client_id: str
    client_secret: str
    refresh_token: str
    token_url: str
    api_url: str
    labels: tuple[str, ...]
    naming: PostNaming
    review: bool
    withdraw: str

    @classmethod
    def from_section(cls, section: Section) -> BloggerSettings:
        return cls(
            blog_id=section.text("blog_id"),
            client_id=section.text("client_id"),
            client_secret=section.secret("client_secret"),
            refresh_token=section.secret("refresh_token"),
            token_url=section.text("token_url", "https://oauth2.googleapis.com/token"),
            api_url=section.text("api_url", "https://www.googleapis.com/blogger/v3").rstrip("/"),
            labels=split_names(section, "labels"),
            naming=PostNaming.from_section(section),
            review=section.flag("review", False),
            withdraw=section.choice("withdraw", ("trash", "draft"), "trash"),
        )


@dataclass
class BloggerPublisher:
    pages_per_batch: ClassVar[int] = 20
    settings: BloggerSettings
    renderer: Renderer
    site: SiteInfo
    client: httpx.Client
    _token: str = ""
    _token_expires: float = field(default=0.0)

    @classmethod
    def from_section(cls, section: Section, env: PublisherEnv, client: httpx.Client | None = None) -> BloggerPublisher:
        return cls(BloggerSettings.from_section(section), env.renderer, env.site, make_client(section, client))

    def permalink(self, number: int) -> str:
        """See `Publisher.permalink`: Blogger makes the address from the title when publishing."""
        return ""

    def publish(self, page: InterviewPage, remote_id: str, remember: Remember | None = None) -> Placement:
        """See `Publisher.publish`."""
        label = self.settings.naming.slug(page.number)
        existing = existing_post(remote_id, label, self._get, self._find, remember)
        body = {
            "kind": "blogger#post",
            "blog": {"id": self.settings.blog_id},
            "title": page.title,
            "content": self.renderer.page(
                "post_body.html", page=page, site=self.site, invitation=True, comments_in_post=True
            ),
            "labels": [*self.settings.labels, label],
            "published": f"{page.date_iso}T00:00:00Z",  # the day only, never the time of day
        }
        if existing is None:
            post = self._ok(self._api("POST", "posts", params={"isDraft": "true"}, json=body), "insert the post")
            if remember is not None:
                remember(post["id"])
        else:
            post = self._ok(
                self._api("PUT", f"posts/{existing['id']}", json={**body, "id": existing["id"]}), "update the post"
            )
        if not self.settings.review and post.get("status") != "LIVE":
            post = self._ok(self._api("POST", f"posts/{post['id']}/publish"), "publish the post")
        logger.info("interview %s: Blogger post %s (%s)", page.number_text, post["id"], post.get("status"))
        return Placement(post["id"], post.get("url", "") if post.get("status") == "LIVE" else "")

    def unpublish(self, remote_id: str) -> None:
        """See `Publisher.unpublish`. trash: posts.delete with useTrash (a draft cannot go to the
        trash and is deleted); draft: posts.revert."""
        post = self._get(remote_id) if remote_id else None
        if post is None or post.get("status") == "SOFT_TRASHED":
            return
        if self.settings.withdraw == "trash":
            response = self._api("DELETE", f"posts/{remote_id}", params={"useTrash": "true"})
            if response.status_code != 404:
                self._ok(response, "delete the post", empty=True)
        elif post.get("status") != "DRAFT":
            self._ok(self._api("POST", f"posts/{remote_id}/revert"), "revert the post to a draft")

    def publish_comment(self, post_remote_id: str, comment: CommentView | None, remote_id: str) -> str:
        """See `Publisher.publish_comment`. Blogger's API can list, approve and delete comments
        but not create one, so approved comments are part of the post's content instead
        (comments_in_post), updated whenever they change."""
        return ""

    def refresh_listing(self, pages: Sequence[InterviewPage], total: int) -> None:
        """See `Publisher.refresh_listing`: Blogger keeps its own front page and feed."""

    def check(self) -> list[str]:
        """For `mailflow doctor`: refresh the access token and read the blog (blogs.get)."""
        response = send(
            self.client,
            BLOG,
            "GET",
            f"{self.settings.api_url}/blogs/{self.settings.blog_id}",
            headers={"Authorization": f"Bearer {self._access_token(True)}"},
        )
        blog = self._ok(response, "read the blog")
        return [
            "Google gave an access token for [blog] refresh_token",
            (
                f"posts go to {blog.get('name', '?')!r} at {blog.get('url', '?')}, labelled "
                f"{self.settings.naming.slug(7)!r} for interview 00007"
            ),
        ]

    def _get(self, remote_id: str) -> dict[str, Any] | None:
        response = self._api("GET", f"posts/{remote_id}", params={"view": "ADMIN"})
        if response.status_code == 404:
            return None  # deleted for good: find it by label or insert it again
        post: dict[str, Any] = self._ok(response, "read the post")
        # A post in the trash is left there; a fresh one takes its place.
        return None if post.get("status") == "SOFT_TRASHED" else post

    def _find(self, label: str) -> dict[str, Any] | None:
        params = {
            "labels": label,
            "status": ["draft", "live", "scheduled"],
            "view": "ADMIN",
            "fetchBodies": "false",
            "maxResults": "10",
        }
        listing = self._ok(self._api("GET", "posts", params=params), "list the posts with the label")
        # An empty postList has no "items" at all.
        posts = [post for post in listing.get("items", []) if label in post.get("labels", [])]
        if not posts:
            return None
        found: dict[str, Any] = min(posts, key=lambda post: (post.get("status") != "LIVE", post.get("published", "")))
        return found

    def _api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call with a fresh enough access token; on 401 the token is refreshed once."""
        url = f"{self.settings.api_url}/blogs/{self.settings.blog_id}/{path}"
        for refresh in (False, True):
            headers = {"Authorization": f"Bearer {self._access_token(refresh)}"}
            response = send(self.client, BLOG, method, url, headers=headers, **kwargs)
            if response.status_code != 401:
                return response
        raise PublishError(
            f"Blogger refused the access token even after refreshing it{short_reason(response)}: check "
            f"{CREDENTIALS} (the token needs the https://www.googleapis.com/auth/blogger scope).",
            permanent=True,
        )

    def _access_token(self, force: bool) -> str:
        if force or not self._token or time.monotonic() >= self._token_expires:
            data = {
                "grant_type": "refresh_token",
                "client_id": self.settings.client_id,
                "client_secret": self.settings.client_secret,
                "refresh_token": self.settings.refresh_token,
            }
            response = send(self.client, TOKEN_SERVICE, "POST", self.settings.token_url, data=data)
            if not response.is_success:
                raise self._token_refusal(response)
            token = json_body(response, TOKEN_SERVICE, "[blog] token_url")
            self._token = str(token["access_token"])
            self._token_expires = time.monotonic() + float(token.get("expires_in", 3600)) - EXPIRY_MARGIN
        return self._token

    def _token_refusal(self, response: httpx.Response) -> PublishError:
        try:
            error = response.json().get("error", "")
        except (ValueError, AttributeError):
            error = ""
        if error == "invalid_grant":
            return PublishError(
                f"Google refused the refresh token{short_reason(response)}: create a new one and put it in "
                "[blog] refresh_token.",
                permanent=True,
            )
        if error in ("invalid_client", "unauthorized_client"):
            return PublishError(
                f"Google does not know this OAuth client{short_reason(response)}: check [blog] client_id and "
                "client_secret.",
                permanent=True,
            )
        return PublishError(
            f"Google's token endpoint refused to refresh the access token (HTTP {response.status_code}"
            f"{short_reason(response)}): check {CREDENTIALS} and [blog] token_url.",
            permanent=True,
        )

    def _ok(self, response: httpx.Response, doing: str, *, empty: bool = False) -> Any:
        if response.is_success:
            return {} if empty else json_body(response, BLOG, "[blog] api_url")
        status, reason = response.status_code, short_reason(response)
        if status == 403:
            raise PublishError(
                f"Blogger would not let us {doing}{reason}: the Google account behind [blog] refresh_token must "
                "be an author or administrator of the blog in [blog] blog_id.",
                permanent=True,
            )
        if status == 404:
            raise PublishError(f"Blogger could not {doing}{reason}: check [blog] blog_id.", permanent=True)
        raise PublishError(f"Blogger would not {doing} (HTTP {status}{reason}).", permanent=True)
