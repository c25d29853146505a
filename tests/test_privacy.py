"""Anonymity end to end: realistic replies whose greetings, signatures and answers carry names,
addresses, phone numbers and links go through the whole pipeline; nothing of it reaches a page,
the index or the feed, nor the time of day, nor the logs."""

from __future__ import annotations

import json
import logging
import re
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime

import pytest
from sqlmodel import Session, select

from mailflow.app import App
from mailflow.models import InboundMessage, Interview
from mailflow.parsing import parse_message
from mailflow.testing import REPO, load_eml
from mailflow.worker import run_pass

from conftest import deliver, site_path

pytestmark = pytest.mark.both_databases  # also on PostgreSQL: see conftest.pytest_generate_tests

EXPECTED = json.loads((REPO / "tests" / "mail" / "expected.json").read_text())
COMPLETE = sorted(name for name, case in EXPECTED.items() if case["kind"] == "complete")


def identifiers(name: str) -> list[str]:
    """What identifies the sender of one fixture: address, display name and its parts, the scrubbed details."""
    mail = parse_message(load_eml(name))
    parts = [part for part in re.split(r"[\s,]+", mail.from_name) if len(part) >= 3 and part[0].isupper()]
    return [
        mail.from_address,
        mail.from_address.split("@")[0],
        mail.from_name,
        *parts,
        *EXPECTED[name].get("scrubbed", []),
    ]


def contains(text: str, identifier: str) -> bool:
    return re.search(rf"(?<![\w.@-]){re.escape(identifier.lower())}(?![\w@-])", text.lower()) is not None


@pytest.fixture
def published(app: App, caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    """Every complete fixture through one pass; returns each one's page by fixture name."""
    with caplog.at_level(logging.INFO):
        for name in COMPLETE:
            deliver(app, load_eml(name))
        run_pass(app)
    with Session(app.engine) as session:
        numbers = {
            message.message_id: interview.number
            for interview, message in session.exec(select(Interview, InboundMessage).join(InboundMessage))
        }
    pages = {}
    for name in COMPLETE:
        number = numbers[parse_message(load_eml(name)).message_id]
        pages[name] = (site_path(app) / "interviews" / f"{number:05d}" / "index.html").read_text()
    return pages


def test_every_realistic_reply_is_published(published: dict[str, str]) -> None:
    assert len(published) == len(COMPLETE) >= 10


@pytest.mark.parametrize("name", COMPLETE)
def test_nothing_identifying_reaches_the_page(published: dict[str, str], name: str) -> None:
    for identifier in identifiers(name):
        assert not contains(published[name], identifier), f"{identifier!r} from {name} is on its page"


def test_index_and_feed_carry_no_identifier_and_no_time_of_day(app: App, published: dict[str, str]) -> None:
    listing = (site_path(app) / "index.html").read_text() + (site_path(app) / "feed.xml").read_text()
    for name in COMPLETE:
        for identifier in identifiers(name):
            assert not contains(listing, identifier), f"{identifier!r} from {name} is in the index or feed"
        sent = parsedate_to_datetime(message_from_bytes(load_eml(name), policy=policy.default)["Date"])
        assert f"{sent:%H:%M}" not in "".join(published.values()), "a submission's time of day is published"
    assert re.findall(r"T(\d\d:\d\d:\d\d)", listing) == ["00:00:00"] * len(re.findall(r"T\d\d:\d\d:\d\d", listing))


def test_logs_hold_no_answers_and_no_addresses(published: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    text = "\n".join(record.getMessage() for record in caplog.get_records("setup")).lower()
    assert text, "the pass logged something"
    for name in COMPLETE:
        mail = parse_message(load_eml(name))
        assert mail.from_address not in text
        for snippets in EXPECTED[name]["answers"].values():
            for snippet in snippets:
                assert snippet.lower() not in text, f"answer text from {name} is in the log"
