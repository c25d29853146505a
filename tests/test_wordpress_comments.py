"""Comments by email on a WordPress blog, against the real WordPress from scripts/test-services.

A comment that arrives by email becomes a WordPress comment on the interview's post, once,
under the signature its author chose (or "Interview #00001 (verified)", or "Anonymous"),
and comes off again when it is rejected or the interview is withdrawn.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select
from test_community import WAREHOUSE, confirmation, mail_from
from test_publishers_contract import SITE, publisher_env, run_id

from mailflow.app import App, build_app
from mailflow.config import load_settings
from mailflow.models import Comment, Publication
from mailflow.pages import CommentView, interview_page
from mailflow.publishers.static import StaticPublisher
from mailflow.states import CommentState, now, transition
from mailflow.testing import make_reply, make_settings
from mailflow.worker import run_pass

import wp_services
from conftest import QUESTIONS, deliver
from wp_services import LosingTransport, WordPressSite

pytestmark = pytest.mark.services

wordpress = wp_services.wordpress

JO = "Jo Private <jo.private@example.net>"


@pytest.fixture
def app(wordpress: WordPressSite, tmp_path: Path) -> Iterator[App]:
    """The app publishing to the real WordPress, with one interview (00001, by Jo) already up."""
    path = make_settings(tmp_path / "site", blog="\n".join([
        "backend = wordpress", f"url = {wordpress.url}", f"username = {wordpress.user}",
        f"application_password = {wordpress.app_password}", f"slug_pattern = {run_id()}-interview-{{number}}",
    ]))  # fmt: skip
    application = build_app(load_settings(path))
    deliver(application, make_reply(WAREHOUSE, sender=JO, questions=QUESTIONS))
    assert run_pass(application).published == 1
    yield application
    application.close()


def post_id(app: App) -> str:
    with Session(app.engine) as session:
        return session.exec(select(Publication)).one().remote_id


def public_comments(site: WordPressSite, post: str) -> list[dict]:
    """What a visitor sees: the REST API without logging in."""
    response = httpx.get(site.api + "comments", params={"post": post, "order": "asc"}, timeout=10)
    response.raise_for_status()
    return response.json()


def every_comment(site: WordPressSite, post: str) -> list[dict]:
    """Held and trashed ones included, as the admin sees them."""
    with site.admin() as admin:
        return [
            comment
            for status in ("all", "trash")
            for comment in admin.get(site.api + "comments",
                                     params={"post": post, "status": status, "context": "edit"}).json()
        ]  # fmt: skip


def comment(app: App, sender: str, body: str) -> None:
    deliver(app, mail_from(sender, "Comment on interview 00001", body))


def rows(app: App) -> list[Comment]:
    with Session(app.engine) as session:
        return list(session.exec(select(Comment).order_by(Comment.id)).all())  # type: ignore[arg-type]


def test_comments_by_email_appear_on_the_post_under_the_chosen_signature(app: App, wordpress: WordPressSite) -> None:
    comment(
        app, "Sam Reed <sam.reed@example.org>", "Night shifts wore me down too.\n\nHang in there, #00001.\n\n-- Sammy\n"
    )
    comment(app, "Mallory <mallory@example.org>", "I pretend to be the author.\nInterview 00001\n")
    comment(app, JO, "Thank you all, it helps.\n00001\n")
    run_pass(app)

    post = post_id(app)
    shown = public_comments(wordpress, post)
    assert [(c["author_name"], c["status"]) for c in shown] == [
        ("Sammy", "approved"),
        ("Anonymous", "approved"),
        ("Interview #00001 (verified)", "approved"),
    ]
    assert "<p>Night shifts wore me down too.</p>" in shown[0]["content"]["rendered"]
    assert "Hang in there, <a href=" in shown[0]["content"]["rendered"]
    assert [c["date"][:10] for c in shown] == [date.today().isoformat()] * 3
    everything = json.dumps(every_comment(wordpress, post))
    for private in ("sam.reed", "Sam Reed", "Mallory", "mallory", "jo.private", "Jo Private"):
        assert private not in everything
    assert [row.remote_id for row in rows(app)] == [str(c["id"]) for c in shown]

    run_pass(app)  # nothing left to do: still three comments
    assert len(every_comment(wordpress, post)) == 3


def test_a_lost_answer_to_the_create_leaves_one_comment(app: App, wordpress: WordPressSite) -> None:
    transport = LosingTransport()
    app.publisher.client = httpx.Client(transport=transport, timeout=10)  # type: ignore[attr-defined]
    transport.lose_next("POST", r"/wp-json/wp/v2/comments\?$")
    comment(app, "Kim <kim@example.org>", "Same here, two years in.\n\nKim\n")
    run_pass(app)
    [row] = rows(app)
    assert transport.lost == 1 and row.remote_id == "" and row.attempts == 1 and "did not answer" in row.last_error
    assert len(every_comment(wordpress, post_id(app))) == 1, "WordPress made it; we never heard"

    with Session(app.engine) as session:  # the retry is due
        session.get(Comment, row.id).next_attempt_at = now()  # type: ignore[union-attr]
        session.commit()
    run_pass(app)
    [made] = every_comment(wordpress, post_id(app))
    [row] = rows(app)
    assert (row.remote_id, row.attempts, made["author_name"]) == (str(made["id"]), 0, "Kim")


def test_a_comment_comes_off_when_rejected_and_with_a_withdrawn_interview(app: App, wordpress: WordPressSite) -> None:
    comment(app, "Sam <sam@example.org>", "First comment.\n\nSam\n")
    comment(app, "Kim <kim@example.org>", "Second comment.\n\nKim\n")
    run_pass(app)
    post = post_id(app)
    assert [c["author_name"] for c in public_comments(wordpress, post)] == ["Sam", "Kim"]

    with Session(app.engine) as session:  # the host changes their mind about the first one
        first = session.exec(select(Comment).order_by(Comment.id)).first()  # type: ignore[arg-type]
        assert first is not None
        transition(first, CommentState.REJECTED)
        session.commit()
    run_pass(app)
    assert [c["author_name"] for c in public_comments(wordpress, post)] == ["Kim"]
    assert [row.remote_id == "" for row in rows(app)] == [True, False]

    deliver(
        app,
        mail_from(
            JO,
            "Re: Your interview number is 00001",
            "withdraw",
            in_reply_to=confirmation(app, "jo.private@example.net")["Message-ID"],
        ),
    )
    run_pass(app)
    assert [row.remote_id for row in rows(app)] == ["", ""]
    assert {c["status"] for c in every_comment(wordpress, post)} == {"trash"}


def test_blogs_without_a_comments_api_show_the_comments_in_the_post(tmp_path: Path) -> None:
    """Blogger and Micropub carry them in the post's content; the static page shows them itself."""
    view = CommentView("Sammy", "", ("Hang in there.",), "2026-11-12", "12 November 2026", "3")
    verified = CommentView("", "00002", ("Me too.",), "2026-11-13", "13 November 2026", "4")
    answers = json.dumps([{"question": "What work are you looking for?", "answer": "Logistics."}])
    page = interview_page(7, answers, date(2026, 11, 12), SITE.name, "", comments=(view, verified))
    env = publisher_env()
    body = env.renderer.page("post_body.html", page=page, site=SITE, invitation=True, comments_in_post=True)
    assert "<strong>Sammy</strong>" in body and "Hang in there." in body
    assert "<strong>Interview #00002 (verified)</strong>" in body
    plain = env.renderer.page("post_body.html", page=page, site=SITE, invitation=True)
    assert "Hang in there." not in plain  # WordPress: its own comments, not in the content
    assert StaticPublisher(tmp_path, env.renderer, SITE).publish_comment("00007", view, "") == ""
