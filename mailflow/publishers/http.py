"""What the network publishers (WordPress, Blogger, Micropub) share: one HTTP call that turns
transport trouble into PublishError, Retry-After, secrets from a command, and the post's names.

Only the outcomes every blog agrees on are decided here: a lost connection, a timeout,
429 and 5xx are worth retrying later. What a 4xx means depends on the blog, so those
responses go back to the backend, which names the setting to fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from mailflow.config import Section
from mailflow.errors import ConfigError, PublishError
from mailflow.publishers import Remember

DEFAULT_TIMEOUT = 30.0
MAX_RETRY_AFTER = 6 * 3600.0


def retry_after_seconds(value: str | None) -> float | None:
    """RFC 9110 §10.2.3: Retry-After is either delay-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), MAX_RETRY_AFTER)


def send(client: httpx.Client, blog: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request. Transport failures, 429 and 5xx raise a temporary PublishError (with
    retry_after when the server sent one); every other response is returned to the caller."""
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise PublishError(f"{blog} did not answer in time ({type(exc).__name__}); will try again.") from exc
    except httpx.TransportError as exc:
        raise PublishError(f"{blog} could not be reached ({type(exc).__name__}: {exc}); will try again.") from exc
    if response.status_code == 429 or response.status_code >= 500:
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        busy = "asked us to slow down" if response.status_code == 429 else "had a server error"
        raise PublishError(
            f"{blog} {busy} (HTTP {response.status_code}{short_reason(response)}); will try again.",
            retry_after=wait,
        )
    return response


def short_reason(response: httpx.Response) -> str:
    """': <the server's own words>' from a JSON error body, if it has any."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message: object = ""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):  # Google: {"error": {"code", "message", ...}}
            message = error.get("message", "")
        else:  # WordPress {"code", "message"}; OAuth and Micropub {"error", "error_description"}
            message = body.get("message") or body.get("error_description") or error or ""
    text = " ".join(str(message).split())
    return f": {text[:200]}" if text else ""


def json_body(response: httpx.Response, blog: str, setting: str) -> Any:
    """The JSON a successful call returned; anything else means we are not talking to the blog."""
    try:
        return response.json()
    except ValueError:
        raise PublishError(
            f"{blog} answered {response.request.method} {response.request.url.path} with something that is "
            f"not JSON (HTTP {response.status_code}); check {setting}.",
            permanent=True,
        ) from None


def split_names(section: Section, key: str) -> tuple[str, ...]:
    """A comma-separated list setting, e.g. `tags = job seeking, interviews`."""
    return tuple(name.strip() for name in section.text(key, "").split(",") if name.strip())


@dataclass(frozen=True)
class PostNaming:
    """How a post is named on the blog: its slug (or label) comes from `slug_pattern`."""

    slug_pattern: str

    @classmethod
    def from_section(cls, section: Section) -> PostNaming:
        pattern = section.text("slug_pattern", "interview-{number}")
        try:
            pattern.format(number="00001")
        except (KeyError, IndexError, ValueError):
            raise ConfigError(
                f"{section.where('slug_pattern')} may only use {{number}}, e.g. interview-{{number}}."
            ) from None
        if "{number}" not in pattern:
            raise ConfigError(f"{section.where('slug_pattern')} must contain {{number}}, e.g. interview-{{number}}.")
        return cls(pattern)

    def slug(self, number: int) -> str:
        return self.slug_pattern.format(number=f"{number:05d}")


def make_client(section: Section, client: httpx.Client | None) -> httpx.Client:
    """The client a test handed in, else one with the `timeout` setting (seconds)."""
    if client is not None:
        return client
    timeout = section.number("timeout", DEFAULT_TIMEOUT)
    return httpx.Client(timeout=httpx.Timeout(timeout), headers={"User-Agent": "mailflow"}, follow_redirects=False)


Post = dict[str, Any]


def existing_post(
    remote_id: str,
    key: str,
    get: Callable[[str], Post | None],
    find: Callable[[str], Post | None],
    remember: Remember | None,
) -> Post | None:
    """The post this interview already has: by the stored id, else by its slug or label (a
    retry after a lost answer). One found by key is remembered at once."""
    existing = get(remote_id) if remote_id else None
    if existing is None:
        existing = find(key)
        if existing is not None and remember is not None:
            remember(str(existing["id"]))
    return existing
