"""WordPress through its REST API (wp/v2) and an application password: one post per interview.

    [blog] backend = wordpress, url, username, application_password (or _command);
    optional api_url, categories, tags, slug_pattern, review, withdraw, timeout.

Exactly once: the slug is the post's key. WordPress does not refuse a duplicate slug, it
answers 201 and quietly names the copy `slug-2`, so before creating we look the slug up in
every status, the trash included (where WordPress keeps it as `slug__trashed`). Terms are
found by name and created if missing; their ids are kept for the life of the publisher.
Comments by email become WordPress comments (see `publish_comment`).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from mailflow.config import Section
from mailflow.errors import ConfigError, PublishError
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
from mailflow.render import Renderer, link_mentions

logger = logging.getLogger(__name__)

BLOG = "WordPress"
# Every status a post of ours can be in; "any" would leave out the trash.
STATUSES = "publish,future,draft,pending,private,trash"
TRASHED_SUFFIX = "__trashed"
COMMENT_EMAIL_DOMAIN = "mailflow.invalid"  # RFC 2606: .invalid never resolves


@dataclass(frozen=True)
class WordPressSettings:
    url: str
    api_url: str
    username: str
    application_password: str
    categories: tuple[str, ...]
    tags: tuple[str, ...]
    naming: PostNaming
    review: bool
    withdraw: str

    @classmethod
    def from_section(cls, section: Section) -> WordPressSettings:
        url = section.text("url")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{section.where('url')} must be the site's address, like https://blog.example/.")
        url = url if url.endswith("/") else url + "/"
        return cls(
            url=url,
            api_url=section.text("api_url", url + "wp-json/"),
            username=section.text("username"),
            application_password=section.secret("application_password"),
            categories=split_names(section, "categories"),
            tags=split_names(section, "tags"),
            naming=PostNaming.from_section(section),
            review=section.flag("review", False),
            withdraw=section.choice("withdraw", ("trash", "draft"), "trash"),
        )


@dataclass
class WordPressPublisher:
    pages_per_batch: ClassVar[int] = 20
    settings: WordPressSettings
    renderer: Renderer
    site: SiteInfo
    client: httpx.Client
    _term_ids: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def from_section(
        cls, section: Section, env: PublisherEnv, client: httpx.Client | None = None
    ) -> WordPressPublisher:
        return cls(WordPressSettings.from_section(section), env.renderer, env.site, make_client(section, client))

    def permalink(self, number: int) -> str:
        """See `Publisher.permalink`: WordPress chooses the address, so it is known after publishing."""
        return ""

    def publish(self, page: InterviewPage, remote_id: str, remember: Remember | None = None) -> Placement:
        """See `Publisher.publish`."""
        slug = self.settings.naming.slug(page.number)
        existing = existing_post(remote_id, slug, self._get, self._find, remember)
        fields = self._fields(page, slug)
        if existing is None:
            fields["status"] = "pending" if self.settings.review else "publish"
            post = self._ok(self._request("POST", "wp/v2/posts", json=fields), "create the post")
            if remember is not None:
                remember(str(post["id"]))
        else:
            status = self._status_for_update(existing.get("status", ""))
            if status:
                fields["status"] = status
            post = self._ok(self._request("POST", f"wp/v2/posts/{existing['id']}", json=fields), "update the post")
        logger.info("interview %s: WordPress post %s (%s)", page.number_text, post["id"], post.get("status"))
        return Placement(str(post["id"]), post.get("link", "") if post.get("status") == "publish" else "")

    def unpublish(self, remote_id: str) -> None:
        """See `Publisher.unpublish`."""
        if not remote_id:
            return
        if self.settings.withdraw == "trash":
            response = self._request("DELETE", f"wp/v2/posts/{remote_id}")
        else:
            response = self._request("POST", f"wp/v2/posts/{remote_id}", json={"status": "draft"})
        # 404: the host deleted it for good; 410 rest_already_trashed: it is in the trash already.
        if response.status_code not in (404, 410):
            self._ok(response, "withdraw the post")

    def publish_comment(self, post_remote_id: str, comment: CommentView | None, remote_id: str) -> str:
        """See `Publisher.publish_comment`. Posted as this user with status approved (without
        it WordPress holds the comment for moderation), under the byline alone. WordPress
        asks for an author email by default (require_name_email), so each comment carries a
        made-up one under the reserved .invalid domain: it reaches nobody, and it is the key
        a retry finds the comment by. Taking it down moves it to the trash."""
        if comment is None:
            if remote_id:
                response = self._request("DELETE", f"wp/v2/comments/{remote_id}")
                # 404: deleted for good by the host; 410 rest_already_trashed.
                if response.status_code not in (404, 410):
                    self._ok(response, "trash the comment")
            return ""
        email = f"comment-{comment.key}@{COMMENT_EMAIL_DOMAIN}"
        found = remote_id or self._find_comment(post_remote_id, email)
        if found:
            return found
        fields = {
            "post": int(post_remote_id),
            "author_name": comment.byline,
            "author_email": email,
            "content": "\n".join(f"<p>{link_mentions(p, self.site.base_url)}</p>" for p in comment.paragraphs),
            # Days only, as on the interview itself: the time a comment was written is not published.
            "date_gmt": f"{comment.date_iso}T00:00:00",
            "status": "approved",
        }
        response = self._request("POST", "wp/v2/comments", json=fields)
        if _error_body(response).get("code") == "rest_comment_closed":
            raise PublishError(
                f"Comments are closed on WordPress post {post_remote_id}: open them (the post's Discussion "
                "settings, or Settings > Discussion for older posts).",
                permanent=True,
            )
        created = self._ok(response, "post the comment")
        logger.info("comment %s: WordPress comment %s on post %s", comment.key, created["id"], post_remote_id)
        return str(created["id"])

    def refresh_listing(self, pages: Sequence[InterviewPage], total: int) -> None:
        """See `Publisher.refresh_listing`: WordPress keeps its own front page and feed."""

    def check(self) -> list[str]:
        """For `mailflow doctor`: log in, and confirm this user may publish and where posts go."""
        me = self._ok(self._request("GET", "wp/v2/users/me", params={"context": "edit"}), "read the user's profile")
        if not me.get("capabilities", {}).get("publish_posts"):
            raise PublishError(
                f"WordPress user {self.settings.username!r} may not publish posts: give it the Editor role.",
                permanent=True,
            )
        return [
            f"logged in to WordPress at {self.settings.url} as {self.settings.username!r}, who may publish posts",
            f"interview 00007 would be the post {self.settings.naming.slug(7)!r}"
            + (" (pending until you publish it: review = yes)" if self.settings.review else ""),
        ]

    def _status_for_update(self, current: str) -> str:
        """In review mode the host decides: a post they published stays published, a withdrawn
        one comes back as pending. Otherwise the post is (re)published."""
        if not self.settings.review:
            return "publish"
        return "pending" if current in ("trash", "draft") else ""

    def _fields(self, page: InterviewPage, slug: str) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "title": page.title,
            "content": self.renderer.page("post_body.html", page=page, site=self.site, invitation=True),
            "excerpt": page.excerpt,
            "slug": slug,
            "comment_status": "open",
            # The day only: the blog's own clock would show the submission's time of day.
            "date_gmt": f"{page.date_iso}T00:00:00",
        }
        if self.settings.categories:
            fields["categories"] = [self._term_id("categories", name) for name in self.settings.categories]
        if self.settings.tags:
            fields["tags"] = [self._term_id("tags", name) for name in self.settings.tags]
        return fields

    def _get(self, remote_id: str) -> dict[str, Any] | None:
        response = self._request("GET", f"wp/v2/posts/{remote_id}", params={"context": "edit"})
        if response.status_code in (404, 410):
            return None  # deleted for good by the host: find it by slug or create it again
        post: dict[str, Any] = self._ok(response, "read the post")
        return post

    def _find(self, slug: str) -> dict[str, Any] | None:
        params = {"slug": f"{slug},{slug}{TRASHED_SUFFIX}", "status": STATUSES, "context": "edit", "per_page": 10}
        posts = self._ok(self._request("GET", "wp/v2/posts", params=params), "look the post up by its slug")
        if not isinstance(posts, list) or not posts:
            return None
        # Oldest first, and a live post before a trashed one, if the host made copies by hand.
        found: dict[str, Any] = min(posts, key=lambda post: (post.get("status") == "trash", post["id"]))
        return found

    def _find_comment(self, post_remote_id: str, email: str) -> str:
        """The id of the comment made earlier under `email` on this post, approved or held, else ''."""
        params = {"post": post_remote_id, "author_email": email, "status": "all", "context": "edit"}
        found = self._ok(self._request("GET", "wp/v2/comments", params=params), "look the comment up")
        return str(min(comment["id"] for comment in found)) if isinstance(found, list) and found else ""

    def _term_id(self, taxonomy: str, name: str) -> int:
        """The id of the category or tag called `name`, created if missing."""
        key = (taxonomy, name.casefold())
        if key not in self._term_ids:
            found = self._ok(
                self._request("GET", f"wp/v2/{taxonomy}", params={"search": name, "per_page": 100}),
                f"look up the {taxonomy} setting",
            )
            match = [term for term in found if html.unescape(term.get("name", "")).casefold() == name.casefold()]
            if match:
                self._term_ids[key] = int(match[0]["id"])
            else:
                response = self._request("POST", f"wp/v2/{taxonomy}", json={"name": name})
                body = _error_body(response) if response.status_code == 400 else {}
                if body.get("code") == "term_exists":  # created meanwhile
                    self._term_ids[key] = int(body["data"]["term_id"])
                else:
                    self._term_ids[key] = int(self._ok(response, f"create the {taxonomy[:-1]} {name!r}")["id"])
        return self._term_ids[key]

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url, params = self.settings.api_url, dict(kwargs.pop("params", None) or {})
        if "rest_route=" in url:  # a site without pretty permalinks: https://blog.example/?rest_route=/
            url, params = url.split("?", 1)[0], {"rest_route": "/" + path, **params}
        else:
            url = (url if url.endswith("/") else url + "/") + path
        auth = httpx.BasicAuth(self.settings.username, self.settings.application_password)
        return send(self.client, BLOG, method, url, params=params, auth=auth, **kwargs)

    def _ok(self, response: httpx.Response, doing: str) -> Any:
        if response.is_success:
            return json_body(response, BLOG, "[blog] url (and api_url, if set)")
        raise self._refusal(response, doing)

    def _refusal(self, response: httpx.Response, doing: str) -> PublishError:
        status, reason = response.status_code, short_reason(response)
        body = _error_body(response)
        code = str(body.get("code", ""))
        if code == "rest_invalid_param" and "rest_forbidden_status" in str(body.get("data", {}).get("details", "")):
            # Not logged in: a wrong application password reaches the slug lookup as an anonymous
            # visitor, who may not ask for drafts and trash (WordPress 6.1 answers 400, not 401).
            status = 401
        if response.is_redirect:
            return PublishError(
                f"WordPress sent us elsewhere (HTTP {status} to {response.headers.get('Location', '?')}): "
                "check [blog] url; use the address the site redirects to.",
                permanent=True,
            )
        if status == 401:
            return PublishError(
                f"WordPress refused the application password (could not {doing}{reason}): "
                "check [blog] username and application_password.",
                permanent=True,
            )
        if status == 403:
            return PublishError(
                f"WordPress user {self.settings.username!r} may not {doing}{reason}: give that user the Editor "
                "role (or Author, without [blog] categories and tags), or check [blog] username.",
                permanent=True,
            )
        if status == 404 and code in ("rest_no_route", ""):
            return PublishError(
                f"No WordPress REST API at {response.request.url} (HTTP 404): check [blog] url, or set [blog] "
                "api_url (for a site without pretty permalinks: api_url = https://your.site/?rest_route=/).",
                permanent=True,
            )
        return PublishError(f"WordPress would not {doing} (HTTP {status}{reason}).", permanent=True)


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
