"""BloggerPublisher against a local server that answers as Blogger API v3 and Google's token
endpoint do (tests/fake_blogger.py says which Google document each shape comes from)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select
from test_publishers_contract import make_page, publisher_env

from mailflow.app import App, build_app
from mailflow.config import Section, load_settings
from mailflow.errors import PublishError
from mailflow.models import Publication
from mailflow.publishers.blogger import BloggerPublisher
from mailflow.testing import make_reply, make_settings
from mailflow.worker import run_pass

from conftest import QUESTIONS, deliver, outbox_messages
from fake_blogger import EXPIRED, FORBIDDEN, SERVER_ERROR, FakeBlogger, rate_limited

LABEL = "interview-00007"


@pytest.fixture
def fake() -> Iterator[FakeBlogger]:
    with FakeBlogger() as server:
        yield server


def settings_for(fake: FakeBlogger, **overrides: str) -> dict[str, str]:
    return {**fake.publisher_settings(), "labels": "Interviews, Job seeking", **overrides}


@pytest.fixture
def make(fake: FakeBlogger) -> Iterator:
    with httpx.Client(timeout=5) as client:

        def build(**overrides: str) -> BloggerPublisher:
            section = Section("blog", settings_for(fake, **overrides), Path("."))
            return BloggerPublisher.from_section(section, publisher_env(), client)

        yield build


def paths(fake: FakeBlogger, method: str) -> list[str]:
    return [request.path for request in fake.requests if request.method == method]


def test_a_post_is_inserted_as_a_draft_remembered_then_published_with_its_labels(fake, make) -> None:
    remembered: list[str] = []
    placement = make().publish(make_page(), "", remembered.append)
    [post] = fake.live_posts(LABEL)
    assert remembered == [post["id"]] == [placement.remote_id]
    assert placement.url == post["url"]
    assert post["labels"] == ["Interviews", "Job seeking", LABEL]
    assert post["title"] == "The Job-Seeker's Interview #00007"
    [insert] = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/posts")]
    assert insert.query["isDraft"] == ["true"]
    assert insert.json()["kind"] == "blogger#post" and insert.json()["blog"] == {"id": fake.BLOG_ID}


def test_a_cut_connection_after_the_insert_then_a_retry_gives_one_post(fake, make) -> None:
    publisher = make()
    fake.fail_next("POST", r"/posts$", None)
    with pytest.raises(PublishError) as lost:
        publisher.publish(make_page(), "")
    assert not lost.value.permanent
    assert [post["status"] for post in fake.posts.values()] == ["DRAFT"]  # the draft exists, unknown to us
    remembered: list[str] = []
    placement = publisher.publish(make_page(), "", remembered.append)
    assert [post["id"] for post in fake.posts.values()] == [placement.remote_id] == remembered[:1]
    assert fake.live_posts(LABEL)
    # Each attempt looked the label up first, in every status: the search must see drafts too.
    listings = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/posts")]
    assert len(listings) == 2
    for listing in listings:
        assert listing.query["labels"] == [LABEL]
        assert set(listing.query["status"]) == {"draft", "live", "scheduled"}


def test_a_cut_connection_after_the_publish_call_is_finished_by_the_retry(fake, make) -> None:
    publisher = make()
    remembered: list[str] = []
    fake.fail_next("POST", r"/publish$", None)
    with pytest.raises(PublishError):
        publisher.publish(make_page(), "", remembered.append)
    placement = publisher.publish(make_page(), remembered[-1], remembered.append)
    assert len(fake.posts) == 1 and fake.live_posts(LABEL)[0]["id"] == placement.remote_id
    assert len(paths(fake, "POST")) == 3  # insert, the lost publish, token; nothing more was needed


def test_an_expired_access_token_is_refreshed_once_and_the_call_repeated(fake, make) -> None:
    publisher = make()
    placement = publisher.publish(make_page(), "")
    assert fake.token_requests == 1
    fake.expire_tokens()
    publisher.publish(make_page(answer="Edited."), placement.remote_id)
    assert fake.token_requests == 2
    assert "Edited." in fake.posts[placement.remote_id]["content"]


def test_a_401_after_refreshing_is_permanent_and_names_the_credentials(fake, make) -> None:
    fake.fail_next("GET", r"/posts$", EXPIRED)
    fake.fail_next("GET", r"/posts$", EXPIRED)
    with pytest.raises(PublishError) as refused:
        make().publish(make_page(), "")
    assert refused.value.permanent
    assert "[blog] client_id, client_secret and refresh_token" in str(refused.value)


def test_a_revoked_refresh_token_is_permanent_and_names_the_setting(fake, make) -> None:
    with pytest.raises(PublishError) as refused:
        make(refresh_token="1//revoked").publish(make_page(), "")
    assert refused.value.permanent and "[blog] refresh_token" in str(refused.value)
    assert "Token has been expired or revoked" in str(refused.value)
    with pytest.raises(PublishError) as unknown:
        make(client_secret="wrong").publish(make_page(), "")
    assert unknown.value.permanent and "[blog] client_id and client_secret" in str(unknown.value)


def test_429_is_retried_later_with_the_servers_retry_after(fake, make) -> None:
    publisher = make()
    fake.fail_next("POST", r"/posts$", rate_limited(120))
    with pytest.raises(PublishError) as slowed:
        publisher.publish(make_page(), "")
    assert not slowed.value.permanent and slowed.value.retry_after == 120  # type: ignore[attr-defined]
    assert fake.posts == {}
    publisher.publish(make_page(), "")
    assert len(fake.posts) == 1


def test_a_server_error_is_temporary_and_the_retry_makes_one_post(fake, make) -> None:
    publisher = make()
    fake.fail_next("POST", r"/publish$", SERVER_ERROR)
    with pytest.raises(PublishError) as failed:
        publisher.publish(make_page(), "")
    assert not failed.value.permanent and "HTTP 500" in str(failed.value)
    placement = publisher.publish(make_page(), "")
    assert [post["id"] for post in fake.posts.values()] == [placement.remote_id]
    assert fake.posts[placement.remote_id]["status"] == "LIVE"


def test_403_is_permanent_and_says_what_to_fix(fake, make) -> None:
    fake.forbidden = True
    with pytest.raises(PublishError) as refused:
        make().publish(make_page(), "")
    assert refused.value.permanent
    assert "[blog] refresh_token" in str(refused.value) and "[blog] blog_id" in str(refused.value)
    assert FORBIDDEN.body["error"]["message"] in str(refused.value)


def test_review_mode_inserts_a_draft_and_never_publishes(fake, make) -> None:
    placement = make(review="yes").publish(make_page(), "")
    assert fake.posts[placement.remote_id]["status"] == "DRAFT" and placement.url == ""
    assert not [path for path in paths(fake, "POST") if path.endswith("/publish")]


def test_withdraw_trash_uses_the_trash_and_a_new_post_replaces_it(fake, make) -> None:
    publisher = make()
    placement = publisher.publish(make_page(), "")
    publisher.unpublish(placement.remote_id)
    [delete] = [r for r in fake.requests if r.method == "DELETE"]
    assert delete.query["useTrash"] == ["true"]
    assert fake.posts[placement.remote_id]["status"] == "SOFT_TRASHED"
    again = publisher.publish(make_page(), placement.remote_id)
    assert again.remote_id != placement.remote_id
    assert [post["id"] for post in fake.live_posts(LABEL)] == [again.remote_id]


# The worker: the remembered id is committed even when the rest of publish fails.


@pytest.fixture
def blogger_app(fake: FakeBlogger, tmp_path: Path) -> Iterator[App]:
    lines = "\n".join(f"{key} = {value}" for key, value in settings_for(fake).items())
    path = make_settings(tmp_path / "site", blog=lines)
    path.write_text(path.read_text().replace("[blog]\nbackend = static\n", "[blog]\nbackend = blogger\n"))
    app = build_app(load_settings(path))
    yield app
    app.close()


def publication(app: App) -> Publication:
    with Session(app.engine) as session:
        [row] = session.exec(select(Publication)).all()
        return row


def make_due(app: App) -> None:
    with Session(app.engine) as session:
        row = session.exec(select(Publication)).one()
        row.next_attempt_at = datetime.now(UTC)
        session.add(row)
        session.commit()


def test_the_worker_keeps_the_draft_id_when_publishing_fails_and_finishes_it_later(fake, blogger_app) -> None:
    deliver(blogger_app, make_reply({n: f"My answer {n}." for n in range(1, len(QUESTIONS) + 1)}, questions=QUESTIONS))
    fake.fail_next("POST", r"/publish$", SERVER_ERROR)
    report = run_pass(blogger_app)
    assert report.publish_failures == 1
    [draft] = fake.posts.values()
    row = publication(blogger_app)
    assert (row.state, row.remote_id, row.attempts) == ("queued", draft["id"], 1)
    text = outbox_messages(blogger_app)[0].get_body(("plain",))
    assert text is not None and "00001" in text.get_content()  # the reply went out regardless
    make_due(blogger_app)
    assert run_pass(blogger_app).published == 1
    row = publication(blogger_app)
    assert (row.state, row.remote_id, row.url) == ("published", draft["id"], fake.posts[draft["id"]]["url"])
    assert len(fake.posts) == 1 and fake.posts[draft["id"]]["status"] == "LIVE"


def test_the_worker_waits_at_least_as_long_as_retry_after(fake, blogger_app) -> None:
    deliver(blogger_app, make_reply({n: f"My answer {n}." for n in range(1, len(QUESTIONS) + 1)}, questions=QUESTIONS))
    fake.fail_next("POST", r"/posts$", rate_limited(3600))
    run_pass(blogger_app)
    row = publication(blogger_app)
    assert row.state == "queued" and row.attempts == 1
    waits = row.next_attempt_at.replace(tzinfo=UTC) - datetime.now(UTC)
    assert waits > timedelta(minutes=59)  # the worker's own first backoff is one minute


def test_check_for_the_doctor_names_the_blog_and_the_label(make) -> None:
    lines = make().check()
    assert "'Fake Job-Seekers' at https://fake-jobseekers.blogspot.com/" in lines[-1] and LABEL in lines[-1]
    with pytest.raises(PublishError, match=r"\[blog\] refresh_token"):
        make(refresh_token="1//revoked").check()
