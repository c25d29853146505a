"""The background sender: replies go out while the pass decides and publishes, and what is
left is sent as the pass ends, without hammering the database while the last ones go."""

from __future__ import annotations

import logging
import time
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlmodel import Session, select

from mailflow import sending
from mailflow.app import App
from mailflow.models import OutboxItem, Publication
from mailflow.sending import BackgroundSender, send_all
from mailflow.testing import make_reply, wait_until
from mailflow.worker import run_pass

from conftest import QUESTIONS, deliver, outbox_messages, site_path

FULL = {n: f"Answer number {n}, in my own words." for n in range(1, 9)}


def queue_replies(app: App, count: int) -> None:
    """`count` emails queued to p0@ ... p{count-1}@example.net, none sent yet."""
    with Session(app.engine) as session:
        for n in range(count):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "jobs@example.test", f"p{n}@example.net", "Your number"
            message["Message-ID"] = message_id = make_msgid(domain="example.test")
            message.set_content("Thank you.\n")
            session.add(OutboxItem(kind="numbered", recipient=f"p{n}@example.net", message_id=message_id,
                                   raw=message.as_bytes()))  # fmt: skip
        session.commit()


def slow_outbox(app: App, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    real_send = app.outbox.send

    def send(mail):  # type: ignore[no-untyped-def]
        time.sleep(seconds)
        real_send(mail)

    monkeypatch.setattr(app.outbox, "send", send)


def test_the_last_replies_are_waited_for_not_polled(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ending a pass, the sender leases what is due a lease at a time and waits for the
    mail server; it does not open a transaction after another while the last ones go."""
    monkeypatch.setattr(sending, "HAND_OVER_BATCH", 4)
    queue_replies(app, 12)
    slow_outbox(app, monkeypatch, 0.03)
    sender, turns = BackgroundSender(app), []
    real_top_up = sender.top_up
    monkeypatch.setattr(sender, "top_up", lambda: turns.append(1) or real_top_up())
    sender.finish()
    assert (sender.sent, sender.failed) == (12, 0)
    assert len(turns) <= 12, f"{len(turns)} transactions for 12 emails"
    assert send_all(app) == (0, 0) and len(outbox_messages(app)) == 12


def test_asked_to_stop_it_leases_nothing_more_and_loses_nothing(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM while replies are going: those handed over but not begun stay queued (they go
    next time, once their lease runs out); none goes twice, none is lost."""
    queue_replies(app, 10)
    slow_outbox(app, monkeypatch, 0.05)
    sender = BackgroundSender(app)
    sender.top_up()  # all ten handed over
    sender.finish(should_stop=lambda: True)
    assert sender.sent < 10, "it did not wait for all ten"
    monkeypatch.undo()
    with Session(app.engine) as session:
        for row in session.exec(select(OutboxItem).where(OutboxItem.state == "queued")):
            row.next_attempt_at = row.created_at  # their lease has run out
            session.add(row)
        session.commit()
    assert send_all(app) == (10 - sender.sent, 0)
    recipients = [message["To"] for message in outbox_messages(app)]
    assert sorted(recipients) == sorted(f"p{n}@example.net" for n in range(10)), "each once"


def test_a_sender_that_fails_while_pages_go_up_stops_neither_the_pages_nor_the_replies(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(3):
        deliver(app, make_reply(FULL, sender=f"P{n} <p{n}@example.net>", questions=QUESTIONS))

    def fail_once_the_replies_went(self: BackgroundSender) -> int:
        assert wait_until(lambda: len(outbox_messages(app)) == 3, timeout=10)
        raise RuntimeError("a bug")

    monkeypatch.setattr(BackgroundSender, "top_up", fail_once_the_replies_went)
    with caplog.at_level(logging.WARNING):
        report = run_pass(app)
    assert report.published == 3, "pages up"
    assert report.sent == 3, "what the sender sent before the failure is recorded as sent"
    assert "#00003" in (site_path(app) / "index.html").read_text(), "the listing was refreshed"
    with Session(app.engine) as session:
        assert {row.state for row in session.exec(select(Publication))} == {"published"}
    assert "the next replies were not handed over while publishing" in caplog.text
    # Even with every lease run out, nothing is left to send.
    with Session(app.engine) as session:
        for row in session.exec(select(OutboxItem).where(OutboxItem.state == "queued")):
            row.next_attempt_at = row.created_at
            session.add(row)
        session.commit()
    assert send_all(app) == (0, 0), "nothing goes twice"
    assert sorted(m["To"] for m in outbox_messages(app)) == [f"p{n}@example.net" for n in range(3)], "each once"


def test_with_the_database_gone_while_finishing_the_first_failure_is_reported(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The database goes away as the pass ends: the sender's threads still end, the pass
    reports that first failure (not the one recording the sent emails ran into), and the
    emails stay queued for the next pass."""
    import threading

    from sqlalchemy.exc import OperationalError

    queue_replies(app, 3)

    def gone(step: str) -> None:
        raise OperationalError(step, {}, Exception(f"the database is gone ({step})"))

    sender = BackgroundSender(app)
    monkeypatch.setattr(sender, "top_up", lambda: gone("top_up"))
    monkeypatch.setattr(sending, "transaction", lambda engine: gone("record"))
    with caplog.at_level(logging.WARNING), pytest.raises(OperationalError) as raised:
        sender.finish()
    assert raised.value.statement == "top_up", "the first failure, not the second"
    assert not [t for t in threading.enumerate() if t.name.startswith("mailflow-sender")], "threads ended"
    assert "what was sent could not be recorded" in caplog.text
    monkeypatch.undo()
    assert send_all(app) == (3, 0), "queued for the next pass"
