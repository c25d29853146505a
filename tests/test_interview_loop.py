"""The whole loop on the embedded default: Maildir in, Maildir out, SQLite, static site."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select, update

from mailflow.app import App
from mailflow.cli import main
from mailflow.models import Draft, InboundMessage, Interview, OutboxItem, Publication
from mailflow.publishers import Placement
from mailflow.publishers.static import StaticPublisher
from mailflow.testing import make_reply
from mailflow.worker import run_pass

from conftest import QUESTIONS, deliver, outbox_messages, site_path

pytestmark = pytest.mark.both_databases  # also on PostgreSQL: see conftest.pytest_generate_tests

FULL = {n: f"Answer number {n}, in my own words." for n in range(1, 9)}


def test_request_gets_the_questionnaire_with_numbered_questions(app: App) -> None:
    deliver(
        app,
        b"From: Sam Reed <sam@example.org>\r\nTo: interview@jobseekers.example\r\nSubject: interview\r\n"
        b"Message-ID: <req-1@example.org>\r\n\r\nHi, please send me the interview. Thanks, Sam\r\n",
    )
    run_pass(app)
    [reply] = outbox_messages(app)
    assert reply["To"] == "sam@example.org"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == "<req-1@example.org>"
    text = reply.get_body(("plain",)).get_content()
    html = reply.get_body(("html",)).get_content()
    for number, question in enumerate(QUESTIONS, start=1):
        assert re.search(rf"^{number}\. {re.escape(question)}$", text, re.MULTILINE)
        assert question in html
    assert "press Reply" in text


def test_complete_reply_gets_a_number_a_private_reply_and_a_page(app: App) -> None:
    deliver(
        app,
        make_reply(
            FULL,
            sender="Maria Lopez <maria.lopez@mail.example.com>",
            questions=QUESTIONS,
            message_id="<r1@mail.example.com>",
        ),
    )
    report = run_pass(app)
    assert report.decided["numbered"] == 1
    [reply] = outbox_messages(app)
    assert reply["To"] == "maria.lopez@mail.example.com"
    assert reply["Cc"] is None and reply["Bcc"] is None
    assert "00001" in reply["Subject"]
    body = reply.get_body(("plain",)).get_content()
    assert "Your interview number is 00001" in body
    assert "https://jobseekers.example/interviews/00001/" in body
    assert "withdraw" in body
    page = (site_path(app) / "interviews" / "00001" / "index.html").read_text()
    assert 'The Job-Seeker&#39;s Interview <span class="number">#00001</span>' in page
    for number, question in enumerate(QUESTIONS, start=1):
        assert question in page
        assert FULL[number] in page
    assert "maria" not in page.lower() and "lopez" not in page.lower()
    index = (site_path(app) / "index.html").read_text()
    assert "00001</strong> interviews so far" in index
    feed = ET.parse(site_path(app) / "feed.xml").getroot()
    entries = feed.findall("{http://www.w3.org/2005/Atom}entry")
    assert len(entries) == 1
    assert entries[0].findtext("{http://www.w3.org/2005/Atom}updated", "").endswith("T00:00:00Z")


def test_numbers_are_gapless_in_order_of_arrival(app: App) -> None:
    for index in range(5):
        deliver(
            app,
            make_reply(
                FULL,
                sender=f"Person {index} <p{index}@example.net>",
                questions=QUESTIONS,
                message_id=f"<order-{index}@example.net>",
            ),
        )
    run_pass(app)
    with Session(app.engine) as session:
        rows = session.exec(select(Interview).order_by(Interview.number)).all()
        inbound = {m.id: m.message_id for m in session.exec(select(InboundMessage)).all()}
    assert [row.number for row in rows] == [1, 2, 3, 4, 5]
    assert [inbound[row.inbound_id] for row in rows] == [f"<order-{i}@example.net>" for i in range(5)]
    index = (site_path(app) / "index.html").read_text()
    assert index.index("#00005") < index.index("#00001"), "index lists newest first"


def test_same_message_delivered_twice_gets_one_number_and_one_reply(app: App) -> None:
    raw = make_reply(FULL, questions=QUESTIONS, message_id="<twice@example.net>")
    deliver(app, raw)
    deliver(app, raw)
    report = run_pass(app)
    assert report.decided == {"numbered": 1, "ignored": 1}
    assert len(outbox_messages(app)) == 1
    with Session(app.engine) as session:
        reasons = [m.reason for m in session.exec(select(InboundMessage).where(InboundMessage.state == "ignored"))]
    assert reasons == ["duplicate-message-id"]


def test_one_senders_messages_in_one_batch_see_each_other(app: App) -> None:
    """A batch is decided as one unit, flushed only when a sender comes again: a partial
    reply and its completion in the same pass make one interview, and the same complete
    reply sent again gets the same number, as they would a pass apart."""
    deliver(app, make_reply(FULL, sender="B <b@example.net>", questions=QUESTIONS, message_id="<b1@x.net>"))
    deliver(app, make_reply(FULL, sender="B <b@example.net>", questions=QUESTIONS, message_id="<b2@x.net>"))
    deliver(app, make_reply({1: "Nursing work.", 3: "Shift patterns."}, questions=QUESTIONS, message_id="<p1@x.net>"))
    rest = {n: text for n, text in FULL.items() if n not in (1, 3)}
    deliver(app, make_reply(rest, questions=QUESTIONS, message_id="<p2@x.net>"))
    report = run_pass(app)
    assert report.decided == {"incomplete": 1, "numbered": 2, "acted_on": 1}
    with Session(app.engine) as session:
        kept = {row.number: json.loads(row.answers_json) for row in session.exec(select(Interview))}
        reasons = [m.reason for m in session.exec(select(InboundMessage).order_by(InboundMessage.id))]
        assert session.exec(select(Draft)).all() == []
    assert reasons[1] == "resubmitted-00001" and reasons[3] == "interview-00002"
    assert [item["answer"] for item in kept[2][:3]] == ["Nursing work.", FULL[2], "Shift patterns."]


def test_what_earlier_passes_decided_is_asked_once_for_a_batch(app: App) -> None:
    """A batch asks the database about its senders and Message-IDs once (batch_facts.py),
    and those answers hold: a draft from an earlier pass is completed, a reply sent again
    gets its number again, a copy of a decided message is a duplicate, and a new sender
    gets a new number."""
    from sqlalchemy import event

    deliver(app, make_reply({1: "Nursing work.", 3: "Shift patterns."}, questions=QUESTIONS, message_id="<p1@x.net>"))
    deliver(app, make_reply(FULL, sender="B <b@example.net>", questions=QUESTIONS, message_id="<b1@x.net>"))
    deliver(app, make_reply(FULL, sender="C <c@example.net>", questions=QUESTIONS, message_id="<c1@x.net>"))
    run_pass(app)
    rest = {n: text for n, text in FULL.items() if n not in (1, 3)}
    deliver(app, make_reply(rest, questions=QUESTIONS, message_id="<p2@x.net>"))
    deliver(app, make_reply(FULL, sender="B <b@example.net>", questions=QUESTIONS, message_id="<b2@x.net>"))
    deliver(app, make_reply(FULL, sender="C <c@example.net>", questions=QUESTIONS, message_id="<c1@x.net>"))
    deliver(app, make_reply(FULL, sender="D <d@example.net>", questions=QUESTIONS, message_id="<d1@x.net>"))
    asked: list[str] = []
    event.listen(app.engine, "before_cursor_execute", lambda *args: asked.append(args[2]))
    report = run_pass(app)
    assert report.decided == {"numbered": 2, "acted_on": 1, "ignored": 1}
    with Session(app.engine) as session:
        reasons = [m.reason for m in session.exec(select(InboundMessage).order_by(InboundMessage.id))][3:]
    assert reasons == ["interview-00003", "resubmitted-00001", "duplicate-message-id", "interview-00004"]
    said = [" ".join(statement.split()) for statement in asked]
    drafts = [statement for statement in said if statement.startswith("SELECT draft.sender_hash FROM draft WHERE")]
    assert len(drafts) == 1 and " IN (" in drafts[0], "asked once for the batch, not once a message"
    replies = [statement for statement in said if statement.startswith("SELECT outbox_item.sender_hash, count(")]
    assert len(replies) == 1, "the replies already sent to the answered batch's senders, asked once"


def test_incomplete_reply_lists_missing_questions_and_the_next_reply_completes_it(app: App) -> None:
    deliver(
        app,
        make_reply({1: "Nursing work.", 3: "Shift patterns."}, questions=QUESTIONS, message_id="<part-1@example.net>"),
    )
    run_pass(app)
    [ask] = outbox_messages(app)
    text = ask.get_body(("plain",)).get_content()
    assert "2. " + QUESTIONS[1] in text and "8. " + QUESTIONS[7] in text
    assert "1. " + QUESTIONS[0] not in text
    deliver(app, make_reply({2: "A year.", 4: "My union."}, questions=QUESTIONS, message_id="<part-2@example.net>"))
    run_pass(app)
    page = (site_path(app) / "interviews" / "00001" / "index.html").read_text()
    for answer in ("Nursing work.", "Shift patterns.", "A year.", "My union."):
        assert answer in page


def test_automatic_mail_is_recorded_and_never_answered(app: App) -> None:
    deliver(
        app,
        b"From: Chris <chris@example.org>\r\nSubject: Automatic reply: hello\r\n"
        b"Auto-Submitted: auto-replied\r\nMessage-ID: <a1@example.org>\r\n\r\nI am away.\r\n",
    )
    deliver(
        app,
        b"From: news@lists.example.org\r\nList-Id: <news.lists.example.org>\r\nSubject: Digest\r\n"
        b"Message-ID: <a2@example.org>\r\n\r\nNews.\r\n",
    )
    run_pass(app)
    assert outbox_messages(app) == []
    with Session(app.engine) as session:
        rows = session.exec(select(InboundMessage).order_by(InboundMessage.id)).all()
    assert [(row.state, row.reason) for row in rows] == [
        ("ignored", "auto-submitted, automatic-subject"),
        ("ignored", "list-id"),
    ]


def test_questionnaire_goes_to_a_person_at_most_once_a_day(app: App) -> None:
    for index in range(3):
        deliver(
            app,
            f"From: Sam <sam@example.org>\r\nSubject: hi\r\nMessage-ID: <q{index}@example.org>\r\n\r\n"
            f"Question {index} for you.\r\n".encode(),
        )
    report = run_pass(app)
    assert report.decided == {"questionnaire_sent": 1, "for_host": 2}
    assert len(outbox_messages(app)) == 1


def test_second_pass_does_nothing_and_the_mailbox_is_filed(app: App) -> None:
    deliver(app, make_reply(FULL, questions=QUESTIONS))
    first = run_pass(app)
    second = run_pass(app)
    assert first.fetched == 1 and first.filed == 1
    assert second.fetched == 0 and not second.decided and second.sent == 0
    inbox = app.settings.incoming.path("path")
    assert list((inbox / "new").iterdir()) == []
    assert [p.name.endswith(":2,S") for p in (inbox / "cur").iterdir()] == [True]


def fail_nth_call(monkeypatch, module: object, name: str, nth: int, error: Exception) -> None:  # type: ignore[no-untyped-def]
    """Make `module.name` raise `error` on its nth call only."""
    real, calls = getattr(module, name), {"n": 0}

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == nth:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, failing)


def test_broken_message_is_kept_with_a_reason_and_the_pass_goes_on(app: App, monkeypatch) -> None:
    from mailflow import background_reading

    real_extract = background_reading.extract_answers

    def fail_for_boom(mail, *args, **kwargs):  # type: ignore[no-untyped-def]
        if mail.message_id == "<boom@example.net>":
            raise RuntimeError("unexpected shape")
        return real_extract(mail, *args, **kwargs)

    monkeypatch.setattr(background_reading, "extract_answers", fail_for_boom)
    deliver(app, make_reply(FULL, questions=QUESTIONS, message_id="<boom@example.net>"))
    deliver(app, make_reply(FULL, sender="B <b@example.net>", questions=QUESTIONS, message_id="<fine@example.net>"))
    report = run_pass(app)
    assert report.decided == {"failed": 1, "numbered": 1}
    with Session(app.engine) as session:
        failed = session.exec(select(InboundMessage).where(InboundMessage.state == "failed")).one()
        numbered = session.exec(select(Interview)).one()
    assert failed.reason == "error: RuntimeError: unexpected shape"
    assert failed.raw.startswith(b"From:") or b"Message-ID: <boom@example.net>" in failed.raw
    assert numbered.number == 1, "a failed message takes no number"


def deliver_from_a_b_and_c(app: App) -> None:
    """Three complete replies, from a@, b@ and c@example.net, in that order."""
    for name in ("a", "b", "c"):
        deliver(app, make_reply(FULL, sender=f"{name.upper()} <{name}@example.net>", questions=QUESTIONS))


@pytest.mark.parametrize("failing", [1, 2], ids=["the-first-number-ever", "a-later-number"])
def test_a_failure_after_numbering_undoes_that_message_alone(app: App, monkeypatch, failing: int) -> None:
    """Messages are decided in batches, one transaction for many: a message that fails half
    way through its turn (its number already taken, before its interview is recorded) is
    undone to the last byte, while the messages before and after it in the same batch keep
    what was decided for them. A failure after the turn: the next test."""
    from mailflow import interviews

    real_allocate, real_handle, calls, deciding = interviews.allocate_number, interviews.handle_interview, [], {}
    failing_sender = f"{'abc'[failing - 1]}@example.net"

    def note_the_sender(session, app, inbound, mail, scrubbed):  # type: ignore[no-untyped-def]
        deciding["from"] = mail.from_address
        return real_handle(session, app, inbound, mail, scrubbed)

    def take_a_number_then_fail(session):  # type: ignore[no-untyped-def]
        calls.append(real_allocate(session))
        if deciding["from"] == failing_sender:
            raise RuntimeError("the disk hiccuped")
        return calls[-1]

    monkeypatch.setattr(interviews, "handle_interview", note_the_sender)
    monkeypatch.setattr(interviews, "allocate_number", take_a_number_then_fail)
    # One batch, however slow the machine: a batch cut short by its time would take the
    # numbers again in the next one (the calls below would differ; the outcome would not).
    monkeypatch.setattr("mailflow.worker.DECIDE_SECONDS", 60.0)
    deliver_from_a_b_and_c(app)
    report = run_pass(app)
    assert report.decided == {"numbered": 2, "failed": 1}
    with Session(app.engine) as session:
        interviews_kept = session.exec(select(Interview).order_by(Interview.number)).all()
        pages = session.exec(select(Publication)).all()
        failed = session.exec(select(InboundMessage).where(InboundMessage.state == "failed")).one()
    # Tried as one unit, then a message at a time: the failing one's number goes back each time.
    assert calls == ([1, 1, 1, 2] if failing == 1 else [1, 2, 1, 2, 2]), "the number went back"
    assert [i.number for i in interviews_kept] == [1, 2]
    assert len(pages) == 2 and failed.id not in {i.inbound_id for i in interviews_kept}
    answered = [f"{name}@example.net" for name in "abc" if name != "abc"[failing - 1]]
    assert sorted(m["To"] for m in outbox_messages(app)) == answered


@pytest.mark.parametrize("step", ["allocate_number", "reply_to"], ids=["deciding", "answering"])
def test_a_passing_failure_is_tried_again_at_once(app: App, monkeypatch, caplog, step: str) -> None:  # type: ignore[no-untyped-def]
    """A batch is decided as one unit, and its numbered replies answered as one; if one
    message fails, that is undone and the batch gone through a message at a time, so a
    failure that passes (the disk, the network for a moment) costs nobody their number,
    its order or their reply."""
    from mailflow import interviews

    caplog.set_level("INFO", logger="mailflow.worker")
    fail_nth_call(monkeypatch, interviews, step, 2, RuntimeError("the disk hiccuped"))
    deliver_from_a_b_and_c(app)
    assert run_pass(app).decided == {"numbered": 3}
    assert "going through them one at a time" in caplog.text
    sent = outbox_messages(app)
    replies = {m["To"]: m["Subject"] for m in sent}
    assert len(sent) == 3, "one reply each, none twice"
    assert [replies[f"{name}@example.net"][-5:] for name in "abc"] == ["00001", "00002", "00003"]
    with Session(app.engine) as session:
        assert len(session.exec(select(Publication)).all()) == 3


def test_a_failure_after_its_number_keeps_the_number_for_a_retry(app: App, monkeypatch) -> None:
    """A complete reply gets its number in turn, then its page and reply: when writing the
    reply fails, the number stays its own (no gap, no second number), the message is marked
    failed for the host, and a retry writes the page and the reply with that number."""
    from mailflow import interviews

    real_reply_to = interviews.reply_to

    def fail_for_b(session, app, inbound, mail, kind, extra):  # type: ignore[no-untyped-def]
        if mail.from_address == "b@example.net":
            raise RuntimeError("the template engine fell over")
        return real_reply_to(session, app, inbound, mail, kind, extra)

    monkeypatch.setattr(interviews, "reply_to", fail_for_b)
    deliver_from_a_b_and_c(app)
    report = run_pass(app)
    assert report.decided == {"numbered": 2, "failed": 1}
    with Session(app.engine) as session:
        failed = session.exec(select(InboundMessage).where(InboundMessage.state == "failed")).one()
        kept = session.exec(select(Interview).where(Interview.inbound_id == failed.id)).one()
        assert session.exec(select(Publication).where(Publication.interview_id == kept.id)).first() is None
    assert kept.number == 2 and failed.reason == "error: RuntimeError: the template engine fell over"
    assert sorted(m["To"] for m in outbox_messages(app)) == ["a@example.net", "c@example.net"]
    monkeypatch.undo()
    result = CliRunner().invoke(main, ["--config", str(app.settings.path), "retry", str(failed.id)])
    assert result.exit_code == 0, result.output
    assert run_pass(app).decided == {"numbered": 1}
    [again] = [m for m in outbox_messages(app) if m["To"] == "b@example.net"]
    assert "00002" in again["Subject"] + again.get_body(("plain",)).get_content()
    with Session(app.engine) as session:
        assert [i.number for i in session.exec(select(Interview).order_by(Interview.number)).all()] == [1, 2, 3]
        assert len(session.exec(select(Publication)).all()) == 3


def test_cli_run_once_over_a_maildir(settings_path: Path, tmp_path: Path) -> None:
    reply = tmp_path / "reply.eml"
    reply.write_bytes(make_reply(FULL, questions=QUESTIONS))
    runner = CliRunner()
    delivered = runner.invoke(main, ["--config", str(settings_path), "deliver", str(reply)])
    assert delivered.exit_code == 0, delivered.output
    result = runner.invoke(main, ["--config", str(settings_path), "run", "--once"])
    assert result.exit_code == 0, result.output
    assert "1 numbered" in result.output
    folder = settings_path.parent
    assert (folder / "var" / "site" / "interviews" / "00001" / "index.html").exists()
    assert len(list((folder / "var" / "mail" / "outbox" / "new").iterdir())) == 1
    status = runner.invoke(main, ["--config", str(settings_path), "status"])
    assert "Interviews so far: 00001" in status.output


def test_explain_shows_rules_answers_and_decision_without_touching_anything(
    settings_path: Path, tmp_path: Path
) -> None:
    reply = tmp_path / "reply.eml"
    reply.write_bytes(make_reply({1: "Teaching.", 2: "Two months."}, questions=QUESTIONS))
    result = CliRunner().invoke(main, ["--config", str(settings_path), "explain", str(reply)])
    assert result.exit_code == 0, result.output
    assert "miss auto_submitted" in result.output
    assert "Answers found: 2 of 8" in result.output
    assert "Teaching." in result.output
    assert "Decision: incomplete" in result.output
    assert not (settings_path.parent / "db").exists(), "explain must not create the database"


def test_bad_settings_give_a_plain_error_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "settings.ini").write_text("[mailflow]\nfrom_address = nobody\n")
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "settings.ini"), "run", "--once"])
    assert result.exit_code == 2
    assert "[mailflow] from_address must be an email address" in result.output


def test_outgoing_reply_is_sent_once_even_if_recording_it_failed(app: App, database_backend: str, monkeypatch) -> None:
    from mailflow import sending

    deliver(app, make_reply(FULL, questions=QUESTIONS))
    real_transition = sending.transition

    def crash_on_sent(row, new, **kwargs):  # type: ignore[no-untyped-def]
        if new == "sent":
            raise KeyboardInterrupt("killed between send and mark-sent")
        return real_transition(row, new, **kwargs)

    monkeypatch.setattr(sending, "transition", crash_on_sent)
    try:
        run_pass(app)
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(sending, "transition", real_transition)
    if database_backend == "postgresql":  # the email is leased to the dead worker: let the lease run out
        with Session(app.engine) as session:
            session.exec(update(OutboxItem).values(next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC)))  # type: ignore[call-overload]
            session.commit()
    run_pass(app)
    messages = outbox_messages(app)
    assert len(messages) == 1
    with Session(app.engine) as session:
        items = session.exec(select(OutboxItem)).all()
    assert [(i.state, i.message_id) for i in items] == [("sent", messages[0]["Message-ID"])]


class AddressChosenByTheBlog(StaticPublisher):
    """Like WordPress or Blogger: the page's address is known only once it is published."""

    def permalink(self, number: int) -> str:
        return ""

    def publish(self, page, remote_id, remember=None):  # type: ignore[no-untyped-def]
        super().publish(page, remote_id, remember)
        return Placement(page.number_text, f"{self.site.base_url}interviews/{page.number_text}/")


def test_when_the_blog_chooses_the_address_the_author_is_told_it_once_published(app: App) -> None:
    """The number's reply cannot contain the address, so a second email brings it."""
    static = app.publisher
    app.publisher = AddressChosenByTheBlog(static.path, static.renderer, static.site)  # type: ignore[attr-defined]
    deliver(app, make_reply(FULL, sender="Jo <jo@example.net>", questions=QUESTIONS))
    run_pass(app)
    numbered, ready = outbox_messages(app)
    assert "own page on the blog in a few minutes" in numbered.get_body(("plain",)).get_content()
    assert ready["To"] == "jo@example.net" and ready["Subject"] == "Interview 00001 is on the blog"
    assert "https://jobseekers.example/interviews/00001/" in ready.get_body(("plain",)).get_content()
    run_pass(app)
    assert len(outbox_messages(app)) == 2


def test_an_overlong_answer_is_cut_and_the_author_told(tmp_path: Path) -> None:
    from mailflow.app import build_app
    from mailflow.config import load_settings
    from mailflow.testing import make_settings

    app = build_app(load_settings(make_settings(tmp_path, core="max_answer_chars = 200")))
    answers = dict(FULL)
    answers[2] = "word " * 400
    deliver(app, make_reply(answers, questions=QUESTIONS))
    run_pass(app)
    [reply] = outbox_messages(app)
    assert "we kept the first 200 characters" in reply.get_body(("plain",)).get_content()
    page = (site_path(app) / "interviews" / "00001" / "index.html").read_text()
    assert "word word […]" in page and "word " * 60 not in page
    app.close()


def test_a_failed_message_is_shown_to_the_host_and_can_be_retried(tmp_path: Path, monkeypatch) -> None:
    import mailflow.background_reading as reading
    from mailflow.app import build_app
    from mailflow.config import load_settings
    from mailflow.testing import make_settings

    app = build_app(load_settings(make_settings(tmp_path, core="digest = daily\ndigest_time = 00:00")))
    monkeypatch.setattr(reading, "extract_answers", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("bug")))
    deliver(app, make_reply(FULL, questions=QUESTIONS))
    run_pass(app)
    [digest] = outbox_messages(app)
    assert 'Incoming message 1 could not be read (error: RuntimeError: bug); after a fix, "mailflow retry 1"' in (
        digest.get_body(("plain",)).get_content()
    )
    monkeypatch.undo()
    result = CliRunner().invoke(main, ["--config", str(app.settings.path), "retry", "1"])
    assert result.exit_code == 0, result.output
    run_pass(app)
    assert (site_path(app) / "interviews" / "00001" / "index.html").exists()
    app.close()


def test_the_same_answers_sent_again_get_the_same_number_again(app: App) -> None:
    deliver(app, make_reply(FULL, sender="Jo <jo@example.net>", questions=QUESTIONS, message_id="<first@example.net>"))
    run_pass(app)
    deliver(app, make_reply(FULL, sender="Jo <jo@example.net>", questions=QUESTIONS, message_id="<again@example.net>"))
    run_pass(app)
    first, again = outbox_messages(app)
    assert first["Subject"] == again["Subject"] == "Your interview number is 00001"
    with Session(app.engine) as session:
        assert [i.number for i in session.exec(select(Interview))] == [1]


def test_an_overlapping_run_on_sqlite_steps_aside(app: App, database_backend: str) -> None:
    from mailflow.db import run_lock

    if database_backend != "sqlite":
        pytest.skip("on PostgreSQL workers run side by side by design (see test_concurrency*.py)")

    deliver(app, make_reply(FULL, questions=QUESTIONS))
    with run_lock(app.lock_path) as held:  # another pass (a slow one, or cron and a person) is running
        assert held
        report = run_pass(app)
    assert report.skipped_locked and report.fetched == 0 and outbox_messages(app) == []
    assert run_pass(app).decided["numbered"] == 1


def test_a_message_that_cannot_be_filed_does_not_hold_up_the_others(app: App, monkeypatch) -> None:
    """Filing goes a batch per command; when the mail server refuses a batch, the messages are
    filed one by one, and the one it keeps refusing waits alone for the next pass."""
    from mailflow.errors import SourceError

    delivered = {
        name: deliver(app, make_reply(FULL, sender=f"{name} <{name}@example.net>", questions=QUESTIONS,
                                      message_id=f"<file-{name}@example.net>"))
        for name in ("a", "b", "c")
    }  # fmt: skip
    real_file = app.source.file
    refused = {f"maildir:{delivered['b'].name}"}

    def refuse_one(outcomes):  # type: ignore[no-untyped-def]
        if any(key in refused for key, _ in outcomes):
            raise SourceError("NO [NONEXISTENT] the folder is gone")
        real_file(outcomes)

    monkeypatch.setattr(app.source, "file", refuse_one)
    report = run_pass(app)
    assert report.decided["numbered"] == 3 and report.filed == 2
    with Session(app.engine) as session:
        waiting = session.exec(select(InboundMessage).where(InboundMessage.filing == "waiting")).all()
    assert len(waiting) == 1 and b"<file-b@example.net>" in waiting[0].raw


def test_a_page_changed_while_it_was_going_up_goes_up_again(app: App, monkeypatch) -> None:
    """An edit (or a new link, or a comment) that lands while the blog is busy with the page
    must not be lost: the page stays queued and the next pass publishes it as it is now."""
    from mailflow.interviews import requeue_publications

    deliver(app, make_reply(FULL, questions=QUESTIONS))
    real_publish = app.publisher.publish

    def edited_meanwhile(page, remote_id, remember=None):  # type: ignore[no-untyped-def]
        placement = real_publish(page, remote_id, remember)
        with Session(app.engine) as session:  # what another process would commit meanwhile
            interview = session.exec(select(Interview)).one()
            interview.answers_json = interview.answers_json.replace("in my own words", "in Greenhouse words")
            requeue_publications(session, [interview.id or 0])
            session.commit()
        return placement

    monkeypatch.setattr(app.publisher, "publish", edited_meanwhile)
    run_pass(app)
    with Session(app.engine) as session:
        assert session.exec(select(Publication)).one().state == "queued"
    monkeypatch.setattr(app.publisher, "publish", real_publish)
    run_pass(app)
    with Session(app.engine) as session:
        assert session.exec(select(Publication)).one().state == "published"
    assert "Greenhouse" in (site_path(app) / "interviews" / "00001" / "index.html").read_text()


def test_a_template_the_host_edits_shows_from_the_next_pass(tmp_path: Path) -> None:
    """Templates are compiled once and kept (not checked on disk at every email); each pass
    reads them afresh, so a long-running worker picks up the host's edit without a restart."""
    import shutil

    from mailflow.app import build_app
    from mailflow.config import load_settings
    from mailflow.render import default_templates_dir
    from mailflow.testing import make_settings

    shutil.copytree(default_templates_dir(), tmp_path / "templates")
    app = build_app(load_settings(make_settings(tmp_path, core="templates = templates")))
    try:
        deliver(app, make_reply(FULL, sender="A <a@example.net>", questions=QUESTIONS))
        run_pass(app)
        numbered = tmp_path / "templates" / "email" / "numbered.txt"
        subject, _, body = numbered.read_text().partition("\n")
        numbered.write_text(f"{subject}\nGood luck with the search, from all of us.\n{body}")
        questionnaire = tmp_path / "templates" / "email" / "questionnaire.txt"
        subject, _, body = questionnaire.read_text().partition("\n")
        questionnaire.write_text(f"{subject}\nTake your time: there is no deadline.\n{body}")
        deliver(app, make_reply(FULL, sender="B <b@example.net>", questions=QUESTIONS))
        run_pass(app)
        # ... and what reading leaves out of answers as the questionnaire's own lines follows it.
        assert "Take your time: there is no deadline." in app.boilerplate
    finally:
        app.close()
    first, second = (m.get_body(("plain",)).get_content() for m in outbox_messages(app))
    assert "Good luck with the search, from all of us." not in first
    assert "Good luck with the search, from all of us." in second
