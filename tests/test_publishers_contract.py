"""One contract, every publisher: static (a folder), WordPress (the real one), Blogger and
Micropub (local servers that follow the published contracts).

Each backend is wrapped in a Harness that can look at the blog behind the publisher's back
and lose the answer to the next create; the assertions are the same for all four.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest

from mailflow.config import Section
from mailflow.errors import PublishError
from mailflow.pages import InterviewPage, SiteInfo, interview_page
from mailflow.publishers import Publisher, PublisherEnv
from mailflow.publishers.blogger import BloggerPublisher
from mailflow.publishers.micropub import MicropubPublisher
from mailflow.publishers.static import StaticPublisher
from mailflow.publishers.wordpress import WordPressPublisher
from mailflow.render import Renderer, default_templates_dir

import wp_services
from fake_blogger import FakeBlogger
from fake_micropub import GOOD_TOKEN, FakeMicropub
from wp_services import LosingTransport, WordPressSite

# The fixture, shared with test_wordpress.py (a test module cannot list pytest_plugins).
wordpress = wp_services.wordpress

SITE = SiteInfo("The Job-Seeker's Interview", "https://jobseekers.example/", "en", "interview@jobseekers.example")
QUESTIONS = ("What work are you looking for?", "What has surprised you so far?")


def publisher_env() -> PublisherEnv:
    return PublisherEnv(Renderer(default_templates_dir()), SITE)


def make_page(number: int = 7, answer: str = "Something in logistics, near home & family.") -> InterviewPage:
    answers = json.dumps(
        [
            {"question": QUESTIONS[0], "answer": answer},
            {"question": QUESTIONS[1], "answer": "How long it takes.\n\nAnd how quiet it is."},
        ]
    )
    return interview_page(number, answers, date(2026, 11, 12), SITE.name, "")


def blog_section(folder: Path, **values: str) -> Section:
    return Section("blog", values, folder)


def run_id() -> str:
    """A fresh prefix per test, so tests never meet each other's posts on the shared WordPress."""
    return "t" + uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class Post:
    remote_id: str
    public: bool
    title: str
    content: str


@dataclass
class Harness:
    name: str
    make: Callable[..., Publisher]  # keyword settings -> a publisher on the same blog
    posts: Callable[[int], list[Post]]  # every post of interview n, drafts included, trash excluded
    lose_next_create: Callable[[], bool]  # False: this blog has no answer to lose
    remembers: bool = True
    has_review: bool = True


def _static(tmp_path: Path) -> Iterator[Harness]:
    folder = tmp_path / "site"

    def posts(number: int) -> list[Post]:
        page = folder / "interviews" / f"{number:05d}" / "index.html"
        if not page.exists():
            return []
        text = page.read_text()
        title = html.unescape(re.search(r"<title>(.*?) · ", text).group(1))  # type: ignore[union-attr]
        return [Post(f"{number:05d}", True, title, text)]

    def make(**settings: str) -> Publisher:
        return StaticPublisher.from_section(blog_section(tmp_path, path=str(folder), **settings), publisher_env())

    yield Harness("static", make, posts, lambda: False, remembers=False, has_review=False)


def _wordpress(site: WordPressSite) -> Iterator[Harness]:
    prefix = run_id()
    transport = LosingTransport()
    client = httpx.Client(transport=transport, timeout=10)
    admin = site.admin()

    def make(**settings: str) -> Publisher:
        section = blog_section(
            Path("."),
            url=site.url,
            username=site.user,
            application_password=site.app_password,
            slug_pattern=f"{prefix}-interview-{{number}}",
            **settings,
        )
        return WordPressPublisher.from_section(section, publisher_env(), client)

    def posts(number: int) -> list[Post]:
        found = admin.get(
            site.api + "posts",
            params={
                "slug": f"{prefix}-interview-{number:05d}",
                "status": "publish,future,draft,pending,private",
                "context": "edit",
            },
        ).json()
        return [Post(str(p["id"]), p["status"] == "publish", p["title"]["raw"], p["content"]["raw"]) for p in found]

    def lose() -> bool:
        transport.lose_next("POST", r"/wp-json/wp/v2/posts\?$")
        return True

    yield Harness("wordpress", make, posts, lose)
    client.close()
    admin.close()


def _blogger() -> Iterator[Harness]:
    with FakeBlogger() as fake, httpx.Client(timeout=5) as client:

        def make(**settings: str) -> Publisher:
            section = blog_section(
                Path("."),
                blog_id=fake.BLOG_ID,
                client_id=fake.CLIENT_ID,
                client_secret=fake.CLIENT_SECRET,
                refresh_token=fake.REFRESH_TOKEN,
                token_url=fake.token_url,
                api_url=fake.api_url,
                **settings,
            )
            return BloggerPublisher.from_section(section, publisher_env(), client)

        def posts(number: int) -> list[Post]:
            return [
                Post(p["id"], p["status"] == "LIVE", p["title"], p["content"])
                for p in fake.posts_with_label(f"interview-{number:05d}")
            ]

        def lose() -> bool:
            fake.fail_next("POST", r"/posts$", None)
            return True

        yield Harness("blogger", make, posts, lose)


def _micropub() -> Iterator[Harness]:
    with FakeMicropub() as fake, httpx.Client(timeout=5) as client:

        def make(**settings: str) -> Publisher:
            section = blog_section(
                Path("."), endpoint=fake.endpoint, token=GOOD_TOKEN, post_url=fake.base_url + "/{slug}/", **settings
            )
            return MicropubPublisher.from_section(section, publisher_env(), client)

        def posts(number: int) -> list[Post]:
            return [
                Post(
                    url,
                    post["properties"].get("post-status") == ["published"],
                    post["properties"]["name"][0],
                    post["properties"]["content"][0]["html"],
                )
                for url, post in fake.posts.items()
                if f"interview-{number:05d}" in url and not post["deleted"]
            ]

        def lose() -> bool:
            fake.fail_next("POST", r"^/micropub$", None)
            return True

        yield Harness("micropub", make, posts, lose)


@pytest.fixture(params=["static", "wordpress", "blogger", "micropub"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "static":
        yield from _static(tmp_path)
    elif request.param == "wordpress":
        yield from _wordpress(request.getfixturevalue("wordpress"))
    elif request.param == "blogger":
        yield from _blogger()
    else:
        yield from _micropub()


def test_publish_creates_one_public_post_with_the_title_and_the_answers(harness: Harness) -> None:
    page = make_page()
    placement = harness.make().publish(page, "")
    [post] = harness.posts(7)
    assert post.public and post.remote_id == placement.remote_id
    assert post.title == "The Job-Seeker's Interview #00007"
    assert "Something in logistics, near home &amp; family." in post.content
    assert "<p>And how quiet it is.</p>" in post.content
    assert QUESTIONS[1] in post.content
    assert placement.url.startswith("http")


def test_publishing_with_the_remote_id_updates_the_same_post(harness: Harness) -> None:
    publisher = harness.make()
    first = publisher.publish(make_page(), "")
    second = publisher.publish(make_page(answer="Nursing, after ten years in retail."), first.remote_id)
    [post] = harness.posts(7)
    assert second.remote_id == first.remote_id == post.remote_id
    assert "Nursing, after ten years in retail." in post.content
    assert "logistics" not in post.content


def test_publishing_again_without_the_remote_id_finds_the_post(harness: Harness) -> None:
    """The worker crashed after the blog answered and before it stored the id."""
    first = harness.make().publish(make_page(), "")
    again = harness.make().publish(make_page(answer="Edited."), "")
    assert again.remote_id == first.remote_id
    assert [post.remote_id for post in harness.posts(7)] == [first.remote_id]


def test_a_lost_answer_to_the_create_then_a_retry_makes_exactly_one_post(harness: Harness) -> None:
    publisher = harness.make()
    remembered: list[str] = []
    if harness.lose_next_create():
        with pytest.raises(PublishError) as lost:
            publisher.publish(make_page(), "", remembered.append)
        assert not lost.value.permanent
        assert len(harness.posts(7)) == 1  # the blog did make the post
    placement = publisher.publish(make_page(), remembered[-1] if remembered else "", remembered.append)
    [post] = harness.posts(7)
    assert post.remote_id == placement.remote_id and post.public
    if harness.remembers:
        assert remembered and remembered[-1] == placement.remote_id


def test_unpublish_takes_the_post_down_and_twice_is_harmless(harness: Harness) -> None:
    publisher = harness.make()
    placement = publisher.publish(make_page(), "")
    publisher.unpublish(placement.remote_id)
    publisher.unpublish(placement.remote_id)
    assert not [post for post in harness.posts(7) if post.public]


def test_withdraw_draft_keeps_the_post_as_a_draft(harness: Harness) -> None:
    if not harness.has_review:
        pytest.skip(f"{harness.name} has no drafts")
    publisher = harness.make(withdraw="draft")
    placement = publisher.publish(make_page(), "")
    publisher.unpublish(placement.remote_id)
    [post] = harness.posts(7)
    assert post.remote_id == placement.remote_id and not post.public


def test_republishing_after_a_withdrawal_gives_one_public_post(harness: Harness) -> None:
    publisher = harness.make()
    placement = publisher.publish(make_page(), "")
    publisher.unpublish(placement.remote_id)
    again = publisher.publish(make_page(), placement.remote_id)
    [post] = harness.posts(7)
    assert post.public and post.remote_id == again.remote_id


def test_review_mode_leaves_the_post_for_the_host(harness: Harness) -> None:
    if not harness.has_review:
        pytest.skip(f"{harness.name} publishes at once; it has no review mode")
    publisher = harness.make(review="yes")
    placement = publisher.publish(make_page(), "")
    publisher.publish(make_page(answer="Edited while waiting."), placement.remote_id)
    [post] = harness.posts(7)
    assert not post.public and post.remote_id == placement.remote_id
    assert "Edited while waiting." in post.content


def test_permalink_is_the_exact_address_or_empty_until_published(harness: Harness) -> None:
    publisher = harness.make()
    before = publisher.permalink(7)
    placement = publisher.publish(make_page(), "")
    assert before in ("", placement.url)


def test_refresh_listing_accepts_the_pages(harness: Harness) -> None:
    publisher = harness.make()
    publisher.publish(make_page(), "")
    publisher.refresh_listing([make_page()], 1)
    assert len(harness.posts(7)) == 1
