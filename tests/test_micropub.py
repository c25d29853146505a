"""MicropubPublisher against a local endpoint that follows the W3C Micropub Recommendation
(tests/fake_micropub.py names the section behind each behaviour)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_publishers_contract import make_page, publisher_env

from mailflow.config import Section
from mailflow.errors import ConfigError, PublishError
from mailflow.publishers.micropub import MicropubPublisher, MicropubSettings

from fake_blogger import Reply
from fake_micropub import GOOD_TOKEN, READ_ONLY_TOKEN, FakeMicropub, micropub_error

SLUG = "interview-00007"


@pytest.fixture
def fake() -> Iterator[FakeMicropub]:
    with FakeMicropub() as server:
        yield server


@pytest.fixture
def make(fake: FakeMicropub) -> Iterator:
    with httpx.Client(timeout=5) as client:

        def build(**overrides: str) -> MicropubPublisher:
            values = {
                "endpoint": fake.endpoint,
                "token": GOOD_TOKEN,
                "post_url": fake.base_url + "/{slug}/",
                "categories": "interviews, job seeking",
                **overrides,
            }
            return MicropubPublisher.from_section(Section("blog", values, Path(".")), publisher_env(), client)

        yield build


def test_create_sends_a_json_h_entry_and_uses_the_location(fake, make) -> None:
    remembered: list[str] = []
    placement = make().publish(make_page(), "", remembered.append)
    url = fake.post_url(SLUG)
    assert placement == type(placement)(url, url) and remembered == [url]
    [create] = [r for r in fake.requests if r.method == "POST"]
    assert create.is_json and create.headers["authorization"] == f"Bearer {GOOD_TOKEN}"
    body = create.json()
    assert body["type"] == ["h-entry"]
    assert body["properties"]["name"] == ["The Job-Seeker's Interview #00007"]
    assert body["properties"]["category"] == ["interviews", "job seeking"]
    assert body["properties"]["mp-slug"] == [SLUG] and body["properties"]["post-status"] == ["published"]
    assert "near home &amp; family" in body["properties"]["content"][0]["html"]


def test_create_can_be_form_encoded(fake, make) -> None:
    placement = make(format="form").publish(make_page(), "")
    post = fake.posts[placement.remote_id]
    assert post["form"] and post["properties"]["category"] == ["interviews", "job seeking"]
    assert post["properties"]["name"] == ["The Job-Seeker's Interview #00007"]
    [create] = [r for r in fake.requests if r.method == "POST"]
    assert create.form()["h"] == ["entry"]


def test_202_accepted_with_a_location_counts_as_created(make) -> None:
    with FakeMicropub(accept_async=True) as server, httpx.Client(timeout=5) as client:
        values = {"endpoint": server.endpoint, "token": GOOD_TOKEN, "post_url": server.base_url + "/{slug}/"}
        publisher = MicropubPublisher.from_section(Section("blog", values, Path(".")), publisher_env(), client)
        assert publisher.publish(make_page(), "").remote_id == server.post_url(SLUG)


def test_a_cut_connection_after_the_create_then_a_retry_gives_one_post(fake, make) -> None:
    publisher = make()
    fake.fail_next("POST", r"^/micropub$", None)
    with pytest.raises(PublishError) as lost:
        publisher.publish(make_page(), "")
    assert not lost.value.permanent and fake.created == 1
    remembered: list[str] = []
    placement = publisher.publish(make_page(answer="Edited on the retry."), "", remembered.append)
    assert fake.created == 1 and list(fake.posts) == [placement.remote_id] == remembered
    assert "Edited on the retry." in fake.posts[placement.remote_id]["properties"]["content"][0]["html"]


def test_an_update_is_a_json_update_action_on_the_same_url(fake, make) -> None:
    publisher = make()
    placement = publisher.publish(make_page(), "")
    publisher.publish(make_page(answer="Second version."), placement.remote_id)
    update = [r for r in fake.requests if r.method == "POST"][-1].json()
    assert update["action"] == "update" and update["url"] == placement.remote_id
    assert set(update["replace"]) == {"name", "content", "category", "post-status", "published"}
    assert fake.created == 1


def test_delete_then_republish_undeletes_the_same_post(fake, make) -> None:
    publisher = make()
    placement = publisher.publish(make_page(), "")
    publisher.unpublish(placement.remote_id)
    publisher.unpublish(placement.remote_id)
    assert fake.live(SLUG) == []
    again = publisher.publish(make_page(), placement.remote_id)
    assert again.remote_id == placement.remote_id and fake.live(SLUG) == [placement.remote_id]
    assert fake.created == 1


def test_a_wrong_token_is_permanent_and_names_the_setting(make) -> None:
    with pytest.raises(PublishError) as refused:
        make(token="not-a-token").publish(make_page(), "")
    assert refused.value.permanent and "check [blog] token" in str(refused.value)
    assert "forbidden" in str(refused.value)


def test_a_token_without_the_scope_is_permanent_and_says_which_scopes(make) -> None:
    with pytest.raises(PublishError) as refused:
        make(token=READ_ONLY_TOKEN).publish(make_page(), "")
    assert refused.value.permanent and "create, update and delete scopes" in str(refused.value)


def test_invalid_request_is_permanent_and_names_the_endpoint(fake, make) -> None:
    fake.fail_next("POST", r"^/micropub$", micropub_error(400, "invalid_request", "Missing content."))
    with pytest.raises(PublishError) as refused:
        make().publish(make_page(), "")
    assert refused.value.permanent and "Missing content." in str(refused.value)
    assert "[blog] endpoint" in str(refused.value)


@pytest.mark.parametrize(
    "reply, retry_after",
    [
        (Reply(429, {"error": "too_many_requests"}, {"Retry-After": "30"}), 30),
        (Reply(500), None),
        (Reply(503, None, {"Retry-After": "5"}), 5),
    ],
)
def test_busy_or_broken_servers_are_temporary_and_the_retry_makes_one_post(fake, make, reply, retry_after) -> None:
    publisher = make()
    fake.fail_next("POST", r"^/micropub$", reply)
    with pytest.raises(PublishError) as failed:
        publisher.publish(make_page(), "")
    assert not failed.value.permanent and failed.value.retry_after == retry_after  # type: ignore[attr-defined]
    publisher.publish(make_page(), "")
    assert fake.created == 1


def test_review_mode_creates_a_draft_and_updates_leave_it_a_draft(fake, make) -> None:
    publisher = make(review="yes")
    placement = publisher.publish(make_page(), "")
    publisher.publish(make_page(answer="Edited."), placement.remote_id)
    assert fake.posts[placement.remote_id]["properties"]["post-status"] == ["draft"]


def test_post_url_is_required_with_a_slug(tmp_path: Path) -> None:
    values = {"endpoint": "https://blog.example/micropub", "token": "t", "post_url": "https://blog.example/"}
    with pytest.raises(ConfigError, match=r"\[blog\] post_url"):
        MicropubSettings.from_section(Section("blog", values, tmp_path))


def test_a_server_that_ignores_mp_slug_is_reported(fake, make, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        make(post_url=fake.base_url + "/posts/{slug}").publish(make_page(), "")
    assert "fix post_url" in caplog.text


def test_check_for_the_doctor_tries_the_token_and_says_where_posts_go(fake, make) -> None:
    assert make().check()[-1].endswith(fake.post_url(SLUG))
    with pytest.raises(PublishError, match=r"check \[blog\] token"):
        make(token="not-a-token").check()
