"""WordPressPublisher against the real WordPress from scripts/test-services: no mock.

Every test names its posts with a fresh slug prefix (slug_pattern), so tests, and repeated
runs on one WordPress, never see each other's posts.
"""

from __future__ import annotations

import html
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select
from test_publishers_contract import make_page, publisher_env, run_id

from mailflow.app import build_app
from mailflow.config import Section, load_settings
from mailflow.errors import PublishError
from mailflow.models import Publication
from mailflow.publishers.wordpress import WordPressPublisher, WordPressSettings
from mailflow.testing import make_reply, make_settings
from mailflow.worker import run_pass

import wp_services
from conftest import QUESTIONS as ALL_QUESTIONS
from conftest import deliver, outbox_messages
from wp_services import WordPressSite

pytestmark = pytest.mark.services

# The fixtures, shared with the contract suite (a test module cannot list pytest_plugins).
wordpress = wp_services.wordpress
losing_client = wp_services.losing_client


def make_publisher(site: WordPressSite, *, client: httpx.Client | None = None, **settings: str) -> WordPressPublisher:
    values = {
        "url": site.url,
        "username": site.user,
        "application_password": site.app_password,
        "slug_pattern": f"{run_id()}-interview-{{number}}",
        **settings,
    }
    return WordPressPublisher.from_section(Section("blog", values, Path(".")), publisher_env(), client)


def public_posts(site: WordPressSite, slug: str) -> list[dict]:
    """What a visitor sees: the REST API without logging in."""
    return httpx.get(site.api + "posts", params={"slug": slug}, timeout=10).json()


def every_post(site: WordPressSite, slug: str) -> list[dict]:
    with site.admin() as admin:
        return admin.get(site.api + "posts", params={"slug": slug, "status": "any", "context": "edit"}).json()


def test_the_post_reads_back_through_the_public_api(wordpress: WordPressSite) -> None:
    publisher = make_publisher(wordpress)
    placement = publisher.publish(make_page(), "")
    slug = publisher.settings.naming.slug(7)
    [post] = public_posts(wordpress, slug)
    assert str(post["id"]) == placement.remote_id
    assert post["slug"] == slug and post["link"] == placement.url == f"{wordpress.url}{slug}/"
    assert html.unescape(post["title"]["rendered"]).replace("\u2019", "'") == "The Job-Seeker's Interview #00007"
    assert post["comment_status"] == "open"
    assert post["date_gmt"].endswith("T00:00:00"), "the day only: the time of day would tell who sent it"
    content = post["content"]["rendered"]
    assert "Something in logistics, near home &amp; family." in content
    assert "What has surprised you so far?" in content and "Ask for the interview by email" in content

    publisher.publish(make_page(answer="Warehouse work, nights if need be."), placement.remote_id)
    [updated] = public_posts(wordpress, slug)
    assert updated["id"] == post["id"] and "Warehouse work, nights if need be." in updated["content"]["rendered"]


def test_a_lost_answer_to_the_create_leaves_one_post_and_no_slug_2(wordpress: WordPressSite, losing_client) -> None:
    client, transport = losing_client
    publisher = make_publisher(wordpress, client=client)
    slug = publisher.settings.naming.slug(7)
    transport.lose_next("POST", r"/wp-json/wp/v2/posts\?$")
    with pytest.raises(PublishError) as lost:
        publisher.publish(make_page(), "")
    assert transport.lost == 1 and not lost.value.permanent
    remembered: list[str] = []
    placement = publisher.publish(make_page(), "", remembered.append)
    assert [str(post["id"]) for post in every_post(wordpress, slug)] == [placement.remote_id] == remembered
    assert every_post(wordpress, f"{slug}-2") == []


def test_a_post_created_before_a_crash_is_found_by_its_slug(wordpress: WordPressSite) -> None:
    """As if our first request had created the post and the worker died before hearing back."""
    publisher = make_publisher(wordpress)
    slug = publisher.settings.naming.slug(7)
    with wordpress.admin() as admin:
        first = admin.post(wordpress.api + "posts", json={"title": "half done", "slug": slug, "status": "publish"})
        first.raise_for_status()
    placement = publisher.publish(make_page(), "")
    assert placement.remote_id == str(first.json()["id"])
    [post] = every_post(wordpress, slug)
    assert post["title"]["raw"] == "The Job-Seeker's Interview #00007"


def test_trash_takes_the_post_off_the_public_api(wordpress: WordPressSite) -> None:
    publisher = make_publisher(wordpress)
    placement = publisher.publish(make_page(), "")
    slug = publisher.settings.naming.slug(7)
    publisher.unpublish(placement.remote_id)
    assert public_posts(wordpress, slug) == []
    with wordpress.admin() as admin:
        assert (
            admin.get(f"{wordpress.api}posts/{placement.remote_id}", params={"context": "edit"}).json()["status"]
            == "trash"
        )
    # Published again, the trashed post comes back under its own slug, not as a copy.
    again = publisher.publish(make_page(), placement.remote_id)
    [post] = public_posts(wordpress, slug)
    assert again.remote_id == str(post["id"]) == placement.remote_id


def test_categories_and_tags_are_found_by_name_or_created_once(wordpress: WordPressSite) -> None:
    run = run_id()
    category, tags = f"Jobs & Careers {run}", f"job seeking {run}, anonymous {run}"
    first = make_publisher(wordpress, categories=category, tags=tags).publish(make_page(7), "")
    # A new publisher: nothing cached, so the names are looked up again, not created twice.
    second = make_publisher(wordpress, categories=category, tags=tags).publish(make_page(8), "")
    with wordpress.admin() as admin:
        categories = admin.get(wordpress.api + "categories", params={"search": run}).json()
        found_tags = admin.get(wordpress.api + "tags", params={"search": run}).json()
        posts = [admin.get(f"{wordpress.api}posts/{placement.remote_id}").json() for placement in (first, second)]
    assert [html.unescape(c["name"]) for c in categories] == [f"Jobs & Careers {run}"]
    assert sorted(t["name"] for t in found_tags) == [f"anonymous {run}", f"job seeking {run}"]
    for post in posts:
        assert post["categories"] == [categories[0]["id"]]
        assert sorted(post["tags"]) == sorted(t["id"] for t in found_tags)


def test_review_mode_makes_a_pending_post_nobody_can_see(wordpress: WordPressSite) -> None:
    publisher = make_publisher(wordpress, review="yes")
    placement = publisher.publish(make_page(), "")
    slug = publisher.settings.naming.slug(7)
    [post] = every_post(wordpress, slug)
    assert post["status"] == "pending" and str(post["id"]) == placement.remote_id
    assert placement.url == ""
    assert public_posts(wordpress, slug) == []


def test_a_wrong_application_password_is_permanent_and_names_the_settings(wordpress: WordPressSite) -> None:
    publisher = make_publisher(wordpress, application_password="abcd EFGH ijkl MNOP qrst UVWX")
    with pytest.raises(PublishError) as refused:
        publisher.publish(make_page(), "")
    assert refused.value.permanent
    assert "check [blog] username and application_password" in str(refused.value)


def test_a_wrong_url_is_permanent_and_names_the_setting(wordpress: WordPressSite) -> None:
    publisher = make_publisher(wordpress, url=wordpress.url + "no-such-blog/")
    with pytest.raises(PublishError) as refused:
        publisher.publish(make_page(), "")
    assert refused.value.permanent and "[blog] url" in str(refused.value)


def test_the_rest_route_address_works_without_pretty_permalinks(wordpress: WordPressSite) -> None:
    publisher = make_publisher(wordpress, api_url=wordpress.url + "?rest_route=/")
    placement = publisher.publish(make_page(), "")
    assert [str(post["id"]) for post in every_post(wordpress, publisher.settings.naming.slug(7))] == [
        placement.remote_id
    ]


def test_the_application_password_can_come_from_a_command(tmp_path: Path) -> None:
    values = {"url": "https://blog.example", "username": "host", "application_password_command": "echo 'ab cd ef'"}
    settings = WordPressSettings.from_section(Section("blog", values, tmp_path))
    assert settings.application_password == "ab cd ef"
    assert settings.api_url == "https://blog.example/wp-json/"


def test_a_reply_in_the_maildir_becomes_a_wordpress_post_and_the_reply_has_its_number(
    wordpress: WordPressSite, tmp_path: Path
) -> None:
    prefix = run_id()
    path = make_settings(
        tmp_path / "site",
        blog="\n".join(
            [
                f"url = {wordpress.url}",
                f"username = {wordpress.user}",
                f"application_password = {wordpress.app_password}",
                f"slug_pattern = {prefix}-interview-{{number}}",
                f"tags = interviews {prefix}",
            ]
        ),
    )
    path.write_text(path.read_text().replace("[blog]\nbackend = static\n", "[blog]\nbackend = wordpress\n"))
    app = build_app(load_settings(path))
    try:
        answers = {n: f"Answer number {n}, in my own words." for n in range(1, len(ALL_QUESTIONS) + 1)}
        deliver(app, make_reply(answers, sender="Maria Lopez <maria.lopez@mail.example.com>", questions=ALL_QUESTIONS))
        report = run_pass(app)
        assert report.published == 1 and report.publish_failures == 0
        # The number first; WordPress chooses the address, so a follow-up says where the page is.
        reply, follow_up = outbox_messages(app)
        assert reply["To"] == follow_up["To"] == "maria.lopez@mail.example.com"
        text = reply.get_body(("plain",))
        assert text is not None and "Your interview number is 00001" in text.get_content()
        [post] = every_post(wordpress, f"{prefix}-interview-00001")
        assert post["status"] == "publish"
        assert post["link"] in follow_up.get_body(("plain",)).get_content()
        assert post["title"]["raw"] == "The Job-Seeker's Interview #00001"
        for number, question in enumerate(ALL_QUESTIONS, start=1):
            assert html.escape(question, quote=False) in post["content"]["raw"]
            assert answers[number] in post["content"]["raw"]
        assert "maria" not in post["content"]["raw"].lower()
        with Session(app.engine) as session:
            [publication] = session.exec(select(Publication)).all()
        assert (publication.state, publication.remote_id, publication.url) == (
            "published",
            str(post["id"]),
            post["link"],
        )
        run_pass(app)  # nothing left to do: still one post
        assert len(every_post(wordpress, f"{prefix}-interview-00001")) == 1
    finally:
        app.close()


def test_check_for_the_doctor_logs_in_and_names_the_slug(wordpress: WordPressSite) -> None:
    publisher = make_publisher(wordpress)
    lines = publisher.check()
    assert "may publish posts" in lines[0] and publisher.settings.naming.slug(7) in lines[1]
    with pytest.raises(PublishError, match="username and application_password"):
        make_publisher(wordpress, application_password="wrong wrong wrong").check()
