"""The host's desk and the community (issue 6): withdraw, edit, review, host commands,
comments, cross-overs, notices, the digest, forgetting a person."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from mailflow.app import App, build_app
from mailflow.cli import main
from mailflow.config import load_settings
from mailflow.models import (
    Comment,
    DigestRun,
    InboundMessage,
    Interview,
    OutboxItem,
    PendingLinks,
    Publication,
    Subscription,
)
from mailflow.testing import make_reply, make_settings
from mailflow.worker import run_pass

from conftest import QUESTIONS, deliver, outbox_messages, site_path
from databases import fresh_postgres_database

pytestmark = pytest.mark.both_databases  # also on PostgreSQL: see conftest.pytest_generate_tests

WAREHOUSE = {n: f"Warehouse forklift night shifts, logistics depot work, answer {n}." for n in range(1, 9)}
NURSING = {n: f"Hospital nursing ward care, patients and clinical rotas, answer {n}." for n in range(1, 9)}


def mail_from(
    sender: str, subject: str, body: str, *, in_reply_to: str = "", headers: dict[str, str] | None = None
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "interview@jobseekers.example"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.net")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for key, value in (headers or {}).items():
        message[key] = value
    message.set_content(body)
    return message.as_bytes()


AppFactory = Callable[..., App]


@pytest.fixture
def make_app(tmp_path: Path, database_backend: str) -> Iterator[AppFactory]:
    """Build the app with extra settings, on the database this run of the test is for."""
    with ExitStack() as stack:
        database = "sqlite:///db/mailflow.db"
        if database_backend == "postgresql":
            database = stack.enter_context(fresh_postgres_database())

        def build(**sections: str) -> App:
            return build_app(load_settings(make_settings(tmp_path / "site", database=database, **sections)))

        yield build


def page(app: App, number: int) -> Path:
    return site_path(app) / "interviews" / f"{number:05d}" / "index.html"


def confirmation(app: App, to: str) -> EmailMessage:
    return next(m for m in outbox_messages(app) if m["To"] == to and "interview number" in m["Subject"])


def test_withdraw_by_replying_takes_the_page_down_and_forgets_the_answers(app: App) -> None:
    deliver(app, make_reply(WAREHOUSE, sender="Jo <jo@example.net>", questions=QUESTIONS))
    run_pass(app)
    assert page(app, 1).exists()
    deliver(
        app,
        mail_from(
            "Jo <jo@example.net>",
            "Re: Your interview number is 00001",
            "withdraw\n\nThanks",
            in_reply_to=confirmation(app, "jo@example.net")["Message-ID"],
        ),
    )
    run_pass(app)
    assert not page(app, 1).exists()
    assert "#00001" not in (site_path(app) / "index.html").read_text()
    with Session(app.engine) as session:
        interview = session.exec(select(Interview)).one()
        publication = session.exec(select(Publication)).one()
    assert (interview.answers_json, interview.sender_hash, publication.state) == ("[]", "", "withdrawn")
    assert any(m["Subject"] == "Interview 00001 withdrawn" for m in outbox_messages(app))


def test_nobody_can_withdraw_someone_elses_interview(app: App) -> None:
    deliver(app, make_reply(WAREHOUSE, sender="Jo <jo@example.net>", questions=QUESTIONS))
    run_pass(app)
    deliver(app, mail_from("Mallory <mallory@example.org>", "withdraw 00001", "withdraw 00001"))
    run_pass(app)
    assert page(app, 1).exists()
    with Session(app.engine) as session:
        last = session.exec(select(InboundMessage).order_by(InboundMessage.id.desc())).first()  # type: ignore[attr-defined]
    assert last is not None and (last.state, last.reason) == ("for_host", "withdraw-no-matching-interview")


def test_reply_to_the_confirmation_with_a_new_answer_edits_the_same_interview(app: App) -> None:
    deliver(app, make_reply(WAREHOUSE, sender="Jo <jo@example.net>", questions=QUESTIONS))
    run_pass(app)
    deliver(
        app,
        mail_from(
            "Jo <jo@example.net>",
            "Re: Your interview number is 00001",
            "3. Actually the hardest part is the silence after interviews.\n\nJo\n",
            in_reply_to=confirmation(app, "jo@example.net")["Message-ID"],
        ),
    )
    run_pass(app)
    html = page(app, 1).read_text()
    assert "the silence after interviews" in html
    assert WAREHOUSE[1] in html and WAREHOUSE[3] not in html
    with Session(app.engine) as session:
        assert [i.number for i in session.exec(select(Interview))] == [1]


def test_review_mode_holds_the_page_until_the_host_approves_by_replying_to_the_digest(make_app: AppFactory) -> None:
    app = make_app(core="review = yes\ndigest = daily\ndigest_time = 00:00")
    deliver(app, make_reply(WAREHOUSE, sender="Jo <jo@example.net>", questions=QUESTIONS))
    run_pass(app)
    assert not page(app, 1).exists()
    assert "once it has been read" in confirmation(app, "jo@example.net").get_body(("plain",)).get_content()
    [digest] = [m for m in outbox_messages(app) if m["To"] == "host@jobseekers.example"]
    assert "#00001" in digest.get_body(("plain",)).get_content()
    deliver(
        app,
        mail_from(
            "Host <host@jobseekers.example>",
            "Re: digest",
            "approve 00001\nreject 00009 spam\n",
            in_reply_to=digest["Message-ID"],
        ),
    )
    run_pass(app)
    assert page(app, 1).exists()
    [_, done] = [m for m in outbox_messages(app) if m["To"] == "host@jobseekers.example"]
    text = done.get_body(("plain",)).get_content()
    assert "Done: Interview 00001 approved" in text and "Not done: There is no interview 00009" in text
    assert any(
        m["Subject"] == "Interview 00001 is on the blog" and m["To"] == "jo@example.net" for m in outbox_messages(app)
    )
    app.close()


def test_a_forged_host_address_alone_commands_nothing(make_app: AppFactory) -> None:
    """Without authserv_id, a command must reply to an email only the host got from us."""
    app = make_app(core="review = yes")
    deliver(app, make_reply(WAREHOUSE, questions=QUESTIONS))
    deliver(app, mail_from("Host <host@jobseekers.example>", "approve", "approve 00001"))
    deliver(
        app,
        mail_from(
            "Host <host@jobseekers.example>", "Re: x", "approve 00001", in_reply_to="<guessed@jobseekers.example>"
        ),
    )
    run_pass(app)
    assert not page(app, 1).exists()
    with Session(app.engine) as session:
        reasons = [m.reason for m in session.exec(select(InboundMessage).where(InboundMessage.state == "for_host"))]
    assert reasons == ["host-command-not-authenticated"] * 2
    app.close()


def test_host_commands_need_the_host_address_and_a_passing_authentication(make_app: AppFactory) -> None:
    app = make_app(core="review = yes\nauthserv_id = mx.jobseekers.example")
    deliver(app, make_reply(WAREHOUSE, questions=QUESTIONS))
    deliver(app, mail_from("Someone <someone@example.org>", "approve", "approve 00001"))
    forged = {"Authentication-Results": "mx.jobseekers.example; dmarc=fail header.from=jobseekers.example; spf=fail"}
    deliver(app, mail_from("Host <host@jobseekers.example>", "approve", "approve 00001", headers=forged))
    run_pass(app)
    assert not page(app, 1).exists()
    no_verdict = {"Authentication-Results": "mx.jobseekers.example; none"}
    deliver(app, mail_from("Host <host@jobseekers.example>", "approve", "approve 00001", headers=no_verdict))
    # The server prepends its real "fail" on top; the attacker's own "pass" below it is not believed.
    injected = {"Authentication-Results": "mx.jobseekers.example; dmarc=pass header.from=jobseekers.example"}
    forged_more = mail_from("Host <host@jobseekers.example>", "approve", "approve 00001", headers=injected)
    deliver(
        app, b"Authentication-Results: mx.jobseekers.example; dmarc=fail header.from=jobseekers.example\n" + forged_more
    )
    # SPF passing for another domain does not vouch for the host's address.
    unaligned = {"Authentication-Results": "mx.jobseekers.example; spf=pass smtp.mailfrom=attacker.example; dmarc=none"}
    deliver(app, mail_from("Host <host@jobseekers.example>", "approve", "approve 00001", headers=unaligned))
    run_pass(app)
    assert not page(app, 1).exists()
    passing = {"Authentication-Results": "mx.jobseekers.example; dmarc=pass header.from=jobseekers.example"}
    deliver(app, mail_from("Host <host@jobseekers.example>", "approve", "approve 00001", headers=passing))
    run_pass(app)
    assert page(app, 1).exists()
    app.close()


def test_reject_from_the_command_line_keeps_it_off_the_blog(make_app: AppFactory) -> None:
    app = make_app(core="review = yes")
    deliver(app, make_reply(WAREHOUSE, questions=QUESTIONS))
    run_pass(app)
    result = CliRunner().invoke(main, ["--config", str(app.settings.path), "reject", "1", "off-topic"])
    assert result.exit_code == 0 and "rejected (off-topic)" in result.output
    again = CliRunner().invoke(main, ["--config", str(app.settings.path), "approve", "1"])
    assert again.exit_code == 1 and "not waiting for review" in again.output
    run_pass(app)
    assert not page(app, 1).exists()
    app.close()


def test_comment_by_email_appears_signed_and_a_number_only_when_verified(app: App) -> None:
    deliver(app, make_reply(WAREHOUSE, sender="Jo <jo@example.net>", questions=QUESTIONS))
    run_pass(app)
    deliver(
        app,
        mail_from(
            "Sam Reed <sam@example.org>",
            "Comment on interview 00001",
            "Night shifts wore me down too. Hang in there.\n\n-- Sammy\n",
        ),
    )
    deliver(
        app,
        mail_from(
            "Mallory <mallory@example.org>",
            "Comment on interview 00001",
            "I pretend to be the author.\nInterview 00001\n",
        ),
    )
    deliver(app, mail_from("Jo <jo@example.net>", "Comment on interview 00001", "Thank you all, it helps.\n00001\n"))
    run_pass(app)
    html = page(app, 1).read_text()
    assert "Night shifts wore me down too. Hang in there." in html and "<strong>Sammy</strong>" in html
    assert "I pretend to be the author." in html
    assert html.count("(verified)") == 1 and "Thank you all, it helps." in html
    assert "Sam Reed" not in html and "sam@example.org" not in html and "Mallory" not in html
    with Session(app.engine) as session:
        verified = {c.body: c.verified_number for c in session.exec(select(Comment))}
    assert verified["I pretend to be the author."] is None
    assert verified["Thank you all, it helps."] == 1


def test_similar_interviews_cross_over_and_older_pages_gain_the_link(app: App) -> None:
    deliver(app, make_reply(WAREHOUSE, sender="A <a@example.net>", questions=QUESTIONS))
    deliver(app, make_reply(NURSING, sender="B <b@example.net>", questions=QUESTIONS))
    run_pass(app)
    assert "interviews/00002/" not in page(app, 1).read_text()
    similar = {n: f"Warehouse forklift work on night shifts at a logistics depot, answer {n}." for n in range(1, 9)}
    deliver(app, make_reply(similar, sender="C <c@example.net>", questions=QUESTIONS))
    run_pass(app)
    third = page(app, 3).read_text()
    assert 'href="https://jobseekers.example/interviews/00001/"' in third
    assert 'href="https://jobseekers.example/interviews/00002/"' not in third
    assert 'href="https://jobseekers.example/interviews/00003/"' in page(app, 1).read_text(), (
        "older page gains the link back"
    )
    reply = confirmation(app, "c@example.net").get_body(("plain",)).get_content()
    assert "#00001: https://jobseekers.example/interviews/00001/" in reply


def test_a_batch_answered_together_names_only_older_interviews_and_links_to_pages_that_exist(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of numbered replies finds its cross-overs together (OlderPages.prepare): each
    reply names only interviews numbered before it, the older pages gain the later links at
    the pass's end, and a batch cut short by its time takes the rest out of the index
    again: no page ever links to an interview that has no page yet."""
    from mailflow import worker
    from mailflow.db import transaction

    def each_a_bit_different(n: int) -> dict[int, str]:
        agency = ("alpha", "bravo", "charlie", "delta")[n - 1]
        return {
            q: f"Warehouse forklift night shifts, logistics depot, agency {agency}, answer {q}." for q in range(1, 9)
        }

    for n in range(1, 5):
        deliver(app, make_reply(each_a_bit_different(n), sender=f"P{n} <p{n}@example.net>", questions=QUESTIONS))
    deliver(app, make_reply(NURSING, sender="B <b@example.net>", questions=QUESTIONS))
    run_pass(app)  # one batch
    replies = [confirmation(app, f"p{n}@example.net").get_body(("plain",)).get_content() for n in range(1, 5)]
    for n, reply in enumerate(replies, start=1):
        assert [f"#{k:05d}" in reply for k in range(1, 6)] == [k < n for k in range(1, 6)], reply
    for n in range(1, 5):
        html = page(app, n).read_text()
        assert all(f"interviews/{k:05d}/" in html for k in range(1, 5) if k != n), n
        assert "interviews/00005/" not in html

    linked_before_their_page: list[int] = []
    real_relink = worker.relink

    def check_links(session: Session, app: App, numbers: list[int]) -> None:
        real_relink(session, app, numbers)
        with_pages = set(session.exec(select(Interview.number).join(Publication)).all())  # type: ignore[arg-type]
        for interview in session.exec(select(Interview)).all():
            linked_before_their_page.extend(set(json.loads(interview.related_json)) - with_pages)

    monkeypatch.setattr(worker, "relink", check_links)
    monkeypatch.setattr(worker, "ANSWER_SECONDS", 0.0)  # all numbered in one batch, answered one a batch
    for n in range(6, 10):  # all like #1: its page would link to the first three of them
        deliver(app, make_reply(each_a_bit_different(1), sender=f"P{n} <p{n}@example.net>", questions=QUESTIONS))
    run_pass(app)
    with transaction(app.engine) as session:
        assert len(app.crossovers(session)) == 9
    assert linked_before_their_page == []
    assert "interviews/00001/" in page(app, 9).read_text()
    assert all(f"interviews/{k:05d}/" in page(app, 1).read_text() for k in (6, 7, 8))


@pytest.mark.both_databases
def test_an_interview_withdrawn_during_a_pass_is_not_quoted_in_its_replies(
    app: App, monkeypatch: pytest.MonkeyPatch, settings_path: Path
) -> None:
    """The host withdraws #1 from another process just after this worker's pass has looked
    at the cross-overs (on SQLite, once a pass): a reply written in that pass must not
    quote it or link to it. (A cache of what links show, tried for speed, did.)"""
    from mailflow import host
    from mailflow.db import transaction

    deliver(app, make_reply(WAREHOUSE, sender="A <a@example.net>", questions=QUESTIONS))
    run_pass(app)
    real_recheck = App.recheck_crossovers

    def look_then_the_host_withdraws(self: App) -> None:
        real_recheck(self)
        with transaction(self.engine) as session:
            self.crossovers(session)  # this pass's look
        other = build_app(load_settings(settings_path))
        try:
            with transaction(other.engine) as session:
                other.take_crossover_turn(session)
                host.host_withdraw(session, other, 1)
        finally:
            other.close()

    monkeypatch.setattr(App, "recheck_crossovers", look_then_the_host_withdraws)
    similar = {n: f"Warehouse forklift work on night shifts at a logistics depot, answer {n}." for n in range(1, 9)}
    deliver(app, make_reply(similar, sender="C <c@example.net>", questions=QUESTIONS))
    run_pass(app)
    reply = confirmation(app, "c@example.net").get_body(("plain",)).get_content()
    assert WAREHOUSE[1] not in reply and "#00001" not in reply


def test_host_links_win_over_automatic_cross_overs(app: App) -> None:
    deliver(app, make_reply(WAREHOUSE, sender="A <a@example.net>", questions=QUESTIONS))
    deliver(app, make_reply(NURSING, sender="B <b@example.net>", questions=QUESTIONS))
    run_pass(app)
    runner = CliRunner()
    assert runner.invoke(main, ["--config", str(app.settings.path), "link", "1", "2"]).exit_code == 0
    run_pass(app)
    assert "interviews/00002/" in page(app, 1).read_text() and "interviews/00001/" in page(app, 2).read_text()
    assert runner.invoke(main, ["--config", str(app.settings.path), "unlink", "1", "2"]).exit_code == 0
    run_pass(app)
    assert "interviews/00002/" not in page(app, 1).read_text()


def test_mentions_of_another_interview_become_links(app: App) -> None:
    answers = dict(WAREHOUSE)
    answers[8] = "Interview #00007 said it better than I can."
    deliver(app, make_reply(answers, questions=QUESTIONS))
    run_pass(app)
    assert '<a href="https://jobseekers.example/interviews/00007/">#00007</a>' in page(app, 1).read_text()


def test_notify_me_sends_cross_over_notes_and_stop_ends_them(app: App) -> None:
    deliver(app, make_reply(WAREHOUSE, sender="Jo <jo@example.net>", questions=QUESTIONS))
    run_pass(app)
    deliver(
        app,
        mail_from(
            "Jo <jo@example.net>",
            "Re: Your interview number is 00001",
            "notify me",
            in_reply_to=confirmation(app, "jo@example.net")["Message-ID"],
        ),
    )
    run_pass(app)
    similar = {n: f"Warehouse forklift night shifts at the logistics depot again, answer {n}." for n in range(1, 9)}
    deliver(app, make_reply(similar, sender="Kim <kim@example.net>", questions=QUESTIONS))
    run_pass(app)  # numbers and publishes 00002
    run_pass(app)  # the note goes out once 00002 is up
    notes = [m for m in outbox_messages(app) if m["Subject"].startswith("New interviews that cross over")]
    assert len(notes) == 1 and notes[0]["To"] == "jo@example.net"
    assert "https://jobseekers.example/interviews/00002/" in notes[0].get_body(("plain",)).get_content()
    deliver(app, mail_from("Jo <jo@example.net>", "stop", "stop"))
    run_pass(app)
    with Session(app.engine) as session:
        assert session.exec(select(Subscription)).all() == []


def test_digest_lists_news_without_tying_interviews_to_senders(make_app: AppFactory) -> None:
    app = make_app(core="digest = daily\ndigest_time = 00:00")
    deliver(app, make_reply(WAREHOUSE, sender="Jo Private <jo.private@example.net>", questions=QUESTIONS))
    deliver(app, mail_from("Sam <sam@example.org>", "A suggestion", "Could you add a question about age?"))
    run_pass(app)
    [digest] = [m for m in outbox_messages(app) if m["To"] == "host@jobseekers.example"]
    text = digest.get_body(("plain",)).get_content()
    assert "#00001" in text and "Could you add a question about age?" in text and "sam@example.org" in text
    assert "jo.private" not in text and "Jo Private" not in text
    run_pass(app)
    assert len([m for m in outbox_messages(app) if m["To"] == "host@jobseekers.example"]) == 1, "one digest a day"
    app.close()


def test_nothing_new_means_no_digest_unless_asked(make_app: AppFactory) -> None:
    app = make_app(core="digest = daily\ndigest_time = 00:00")
    run_pass(app)
    assert outbox_messages(app) == []
    result = CliRunner().invoke(main, ["--config", str(app.settings.path), "digest", "--send"])
    assert result.exit_code == 0, result.output
    [digest] = outbox_messages(app)
    assert digest["To"] == "host@jobseekers.example" and "00000 interviews so far" in digest["Subject"]
    app.close()


def test_forget_removes_a_persons_data_and_takes_their_interview_down(app: App) -> None:
    deliver(app, make_reply(WAREHOUSE, sender="Jo <jo@example.net>", questions=QUESTIONS))
    run_pass(app)
    result = CliRunner().invoke(main, ["--config", str(app.settings.path), "forget", "JO@example.net"])
    assert result.exit_code == 0 and "interviews 00001" in result.output
    run_pass(app)
    assert not page(app, 1).exists()
    with Session(app.engine) as session:
        assert all(m.raw == b"" and m.sender_hash == "" for m in session.exec(select(InboundMessage)))
        assert all(o.recipient == "" for o in session.exec(select(OutboxItem)))


def test_raw_messages_and_addresses_are_purged_after_the_retention_period(make_app: AppFactory) -> None:
    app = make_app(core="retention_days = 0")
    deliver(app, make_reply(WAREHOUSE, questions=QUESTIONS))
    run_pass(app)
    with Session(app.engine) as session:
        assert [(m.state, m.raw) for m in session.exec(select(InboundMessage))] == [("numbered", b"")]
        assert [(o.state, o.recipient) for o in session.exec(select(OutboxItem))] == [("sent", "")]
    assert page(app, 1).exists()
    app.close()


@pytest.mark.parametrize(
    "result, answered",
    [
        ("mx.jobseekers.example; dmarc=fail (p=reject) header.from=example.net", False),
        ("mx.jobseekers.example; spf=fail smtp.mailfrom=example.net; dkim=none", False),
        ("mx.jobseekers.example; dmarc=pass header.from=example.net", True),
        ("evil.example; dmarc=fail header.from=example.net", True),  # not our server's verdict: ignored
    ],
)
def test_a_sender_failing_authentication_gets_no_automatic_reply(
    make_app: AppFactory, result: str, answered: bool
) -> None:
    app = make_app(core="authserv_id = mx.jobseekers.example")
    deliver(
        app,
        mail_from(
            "Victim <victim@example.net>", "send me the interview", "please", headers={"Authentication-Results": result}
        ),
    )
    run_pass(app)
    assert bool(outbox_messages(app)) is answered
    app.close()


def test_a_thank_you_after_the_number_reaches_the_host_without_the_address(make_app: AppFactory) -> None:
    app = make_app(core="digest = daily\ndigest_time = 00:00")
    deliver(app, make_reply(WAREHOUSE, sender="Jane Roe <jane.roe@example.net>", questions=QUESTIONS))
    run_pass(app)
    deliver(
        app,
        mail_from(
            "Jane Roe <jane.roe@example.net>",
            "Re: Your interview number is 00001",
            "Thank you so much, this means a lot!",
            in_reply_to=confirmation(app, "jane.roe@example.net")["Message-ID"],
        ),
    )
    with Session(app.engine) as session:  # make the next digest due
        for run in session.exec(select(DigestRun)).all():
            session.delete(run)
        session.commit()
    run_pass(app)
    to_jane = [m for m in outbox_messages(app) if m["To"] == "jane.roe@example.net"]
    assert len(to_jane) == 1, "no second questionnaire for a thank-you"
    digest = [m for m in outbox_messages(app) if m["To"] == "host@jobseekers.example"][-1]
    text = digest.get_body(("plain",)).get_content()
    assert "Thank you so much, this means a lot!" in text and "an interviewee (address withheld)" in text
    assert "jane.roe" not in text and "00001" not in text.split("MESSAGES FOR YOU")[1]
    app.close()


def test_in_review_mode_an_unapproved_interview_is_never_linked_or_quoted(make_app: AppFactory) -> None:
    app = make_app(core="review = yes")
    similar = {n: f"Warehouse forklift work on night shifts at a logistics depot, answer {n}." for n in range(1, 9)}
    deliver(app, make_reply(WAREHOUSE, sender="A <a@example.net>", questions=QUESTIONS))
    deliver(app, make_reply(similar, sender="B <b@example.net>", questions=QUESTIONS))
    run_pass(app)
    runner = CliRunner()
    assert runner.invoke(main, ["--config", str(app.settings.path), "approve", "2"]).exit_code == 0
    run_pass(app)
    assert "interviews/00001/" not in page(app, 2).read_text() and WAREHOUSE[1] not in page(app, 2).read_text()
    assert WAREHOUSE[1] not in confirmation(app, "b@example.net").get_body(("plain",)).get_content()
    assert runner.invoke(main, ["--config", str(app.settings.path), "approve", "1"]).exit_code == 0
    run_pass(app)
    assert "interviews/00001/" in page(app, 2).read_text(), "linked once both are approved"
    app.close()


def test_withdrawn_while_being_published_the_page_still_comes_down(app: App, monkeypatch) -> None:
    deliver(app, make_reply(WAREHOUSE, sender="Jo <jo@example.net>", questions=QUESTIONS))
    real_publish = type(app.publisher).publish

    def publish_while_the_host_withdraws(self, page, remote_id, remember=None):  # type: ignore[no-untyped-def]
        placement = real_publish(self, page, remote_id, remember)
        assert CliRunner().invoke(main, ["--config", str(app.settings.path), "withdraw", "1"]).exit_code == 0
        return placement

    monkeypatch.setattr(type(app.publisher), "publish", publish_while_the_host_withdraws)
    run_pass(app)
    monkeypatch.setattr(type(app.publisher), "publish", real_publish)
    run_pass(app)
    assert not page(app, 1).exists()
    with Session(app.engine) as session:
        assert session.exec(select(Publication)).one().state == "withdrawn"


def test_replies_numbered_in_one_batch_link_to_each_other_and_to_older_pages(app: App) -> None:
    """Older pages are refreshed once at the end of a batch of numbered replies, so an
    interview numbered early in the batch links to those numbered after it too."""
    deliver(app, make_reply(WAREHOUSE, sender="A <a@example.net>", questions=QUESTIONS))
    run_pass(app)
    deliver(
        app,
        mail_from("A <a@example.net>", "Re: Your interview number is 00001", "notify me",
                  in_reply_to=confirmation(app, "a@example.net")["Message-ID"]),
    )  # fmt: skip
    run_pass(app)
    for sender, depot in (
        ("C <c@example.net>", "north"),
        ("D <d@example.net>", "south"),
        ("E <e@example.net>", "east"),
    ):
        similar = {
            n: f"Warehouse forklift night shifts at the {depot} logistics depot, answer {n}." for n in range(1, 9)
        }
        deliver(app, make_reply(similar, sender=sender, questions=QUESTIONS))
    report = run_pass(app)
    assert report.decided == {"numbered": 3}
    for number, others in ((1, (2, 3, 4)), (2, (1, 3, 4)), (4, (1, 2, 3))):
        text = page(app, number).read_text()
        assert all(f'href="https://jobseekers.example/interviews/{other:05d}/"' in text for other in others), number
    with Session(app.engine) as session:
        subscription = session.exec(select(Subscription)).one()
        assert subscription.pending_json == "[2, 3, 4]"


def test_one_new_interview_whose_older_pages_cannot_be_relinked_does_not_hold_up_the_others(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The pass's end relinks older pages for its new interviews together; when that fails,
    each new interview is tried alone: the others' links go up, the failing one waits for
    the next pass."""
    from mailflow.interviews import OlderPages

    deliver(app, make_reply(WAREHOUSE, sender="A <a@example.net>", questions=QUESTIONS))
    run_pass(app)
    real_refresh = OlderPages.refresh

    def fails_for_3(self: OlderPages, session: Session, app: App) -> None:
        if any(3 in numbers for numbers in self.newer.values()):
            raise RuntimeError("refreshing failed")
        real_refresh(self, session, app)

    monkeypatch.setattr(OlderPages, "refresh", fails_for_3)
    for name in ("c", "d"):
        similar = {n: f"Warehouse forklift work on night shifts at a logistics depot, {name} {n}." for n in range(1, 9)}
        deliver(app, make_reply(similar, sender=f"{name.upper()} <{name}@example.net>", questions=QUESTIONS))
    assert run_pass(app).decided == {"numbered": 2}
    assert "interview 00003: its older related pages were not given a link to it" in caplog.text
    assert "interviews/00002/" in page(app, 1).read_text()
    with Session(app.engine) as session:
        assert [row.number for row in session.exec(select(PendingLinks)).all()] == [3]
    monkeypatch.undo()
    run_pass(app)
    assert "interviews/00003/" in page(app, 1).read_text() or "interviews/00003/" in page(app, 2).read_text()
    with Session(app.engine) as session:
        assert session.exec(select(PendingLinks)).all() == []


def test_if_older_pages_cannot_be_refreshed_the_replies_still_go(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure half way through refreshing the older pages undoes that refresh alone; the
    next pass refreshes them."""
    deliver(app, make_reply(WAREHOUSE, sender="A <a@example.net>", questions=QUESTIONS))
    run_pass(app)

    def broken(*_args: object) -> None:  # after the older page's links were changed in memory
        raise RuntimeError("refreshing failed")

    monkeypatch.setattr("mailflow.interviews.requeue", broken)
    similar = {n: f"Warehouse forklift work on night shifts at a logistics depot, answer {n}." for n in range(1, 9)}
    deliver(app, make_reply(similar, sender="C <c@example.net>", questions=QUESTIONS))
    assert run_pass(app).decided == {"numbered": 1}
    assert "00002" in confirmation(app, "c@example.net")["Subject"]
    assert len(outbox_messages(app)) == 2
    assert "were not given a link to it" in caplog.text
    assert 'href="https://jobseekers.example/interviews/00001/"' in page(app, 2).read_text()
    with Session(app.engine) as session:
        first = session.exec(select(Interview).where(Interview.number == 1)).one()
        assert first.related_json == "[]", "the half-done refresh was undone"
    assert "interviews/00002/" not in page(app, 1).read_text()
    monkeypatch.undo()
    run_pass(app)
    assert "interviews/00002/" in page(app, 1).read_text()
    with Session(app.engine) as session:
        assert session.exec(select(PendingLinks)).all() == []
