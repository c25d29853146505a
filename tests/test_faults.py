"""Faults around the worker: a locked database stops the pass cleanly and nothing is lost;
a mail server that is down keeps the mail waiting until it is back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner
from sqlmodel import Session, select

from mailflow.app import build_app
from mailflow.cli import main
from mailflow.config import load_settings
from mailflow.models import InboundMessage, OutboxItem
from mailflow.testing import make_reply, make_settings
from mailflow.worker import run_pass

from conftest import QUESTIONS, deliver, outbox_messages

FULL = {n: f"Answer {n}." for n in range(1, 9)}


def test_a_locked_database_stops_the_pass_with_a_plain_error_and_nothing_is_lost(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, core="database_timeout = 0.5")
    app = build_app(load_settings(settings))
    deliver(app, make_reply(FULL, questions=QUESTIONS))
    holder = sqlite3.connect(tmp_path / "db" / "mailflow.db")
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the database
    try:
        result = CliRunner().invoke(main, ["--config", str(settings), "run", "--once"])
    finally:
        holder.rollback()
        holder.close()
    assert result.exit_code == 2
    assert "the database could not be used (database is locked)" in result.output
    assert "Check [mailflow] database" in result.output
    assert outbox_messages(app) == []
    assert len(list((tmp_path / "var" / "mail" / "inbox" / "new").iterdir())) == 1, "the message is still waiting"
    run_pass(app)
    with Session(app.engine) as session:
        assert [m.state for m in session.exec(select(InboundMessage))] == ["numbered"]
    assert len(outbox_messages(app)) == 1
    app.close()


def test_mail_waits_while_the_smtp_server_is_down_and_goes_when_it_is_back(tmp_path: Path) -> None:
    """Nothing listens on the port: every attempt fails softly, the email stays queued with the reason."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = make_settings(
        tmp_path, outgoing=f"backend = smtp\nhost = 127.0.0.1\nport = {port}\ntls = none\nusername =\n"
    )
    app = build_app(load_settings(down))
    deliver(app, make_reply(FULL, questions=QUESTIONS))
    report = run_pass(app)
    assert report.decided["numbered"] == 1 and report.sent == 0 and report.send_failures == 1
    with Session(app.engine) as session:
        [item] = session.exec(select(OutboxItem)).all()
    assert item.state == "queued" and item.attempts == 1 and item.last_error
    message_id = item.message_id
    app.close()
    # The server is back (here: the host switches to the local outbox); the same email goes out.
    back = build_app(load_settings(make_settings(tmp_path)))
    with Session(back.engine) as session:
        row = session.exec(select(OutboxItem)).one()
        row.next_attempt_at = row.created_at  # its retry time has come
        session.add(row)
        session.commit()
    run_pass(back)
    [sent] = outbox_messages(back)
    assert sent["Message-ID"] == message_id
    back.close()


def test_a_refusal_naming_the_recipient_keeps_the_address_out_of_logs_and_records(tmp_path: Path, caplog) -> None:
    from mailflow.retries import Failure, record_failure

    item = OutboxItem(id=1, kind="numbered", recipient="jane.roe@example.net", message_id="<m@x>", raw=b"")
    with caplog.at_level("INFO"):
        record_failure(item, Failure("550 5.1.1 <jane.roe@example.net>: Recipient address rejected", permanent=True))
    assert item.state == "failed" and "[address]" in item.last_error
    assert "jane.roe" not in item.last_error and "jane.roe" not in caplog.text


def test_a_full_disk_stops_the_pass_with_a_plain_error_and_nothing_is_lost(tmp_path: Path) -> None:
    """The database sits on a tiny file system of its own, which then fills up."""
    import os
    import subprocess

    import pytest

    small = tmp_path / "small-disk"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True).returncode:
        if os.environ.get("CI") == "true":
            pytest.fail("mounting a small tmpfs for the full-disk test needs root")
        pytest.skip("mounting a small tmpfs for the full-disk test needs root")
    try:
        settings = make_settings(tmp_path, database=f"sqlite:///{small}/mailflow.db", core="database_timeout = 1")
        app = build_app(load_settings(settings))
        filler = small / "filler"
        with open(filler, "wb", buffering=0) as handle:  # take every byte that is left
            try:
                while True:
                    handle.write(b"\0" * 4096)
            except OSError:
                pass
        for index in range(5):
            deliver(app, make_reply(FULL, sender=f"P{index} <p{index}@example.net>", questions=QUESTIONS))
        result = CliRunner().invoke(main, ["--config", str(settings), "run", "--once"])
        assert result.exit_code == 2, result.output
        assert "the database could not be used" in result.output and "the disk is not full" in result.output
        assert len(list((tmp_path / "var" / "mail" / "inbox" / "new").iterdir())) == 5, "every message still waits"
        filler.unlink()
        run_pass(app)
        with Session(app.engine) as session:
            assert sorted(m.state for m in session.exec(select(InboundMessage))) == ["numbered"] * 5
        assert len(outbox_messages(app)) == 5
        app.close()
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True)
