"""Replies written in real mail clients: the answers come out, and nothing else does.

Each file in tests/mail/ is a raw message as a particular client sends it (headers,
MIME structure, charset, transfer encoding, quoting style). tests/mail/expected.json
says, per file, what the worker must make of it:

    kind            complete | incomplete (real answers), request | automatic (no answers)
    answers         question number -> substrings the extracted answer must contain
    missing         the question numbers left unanswered, exactly
    not_in_answers  text that must appear in no answer (signatures, greetings, quote
                    headers, the questionnaire's own text, client boilerplate)
    scrubbed        identifying details written inside answers: present before
                    scrubbing, gone after scrub_answer()
    paragraphs      answers with several paragraphs -> how many (others have one)
    from_name       the sender's display name, decoded
    note            for people: what the message exercises
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from mailflow.answers import extract_answers
from mailflow.parsing import parse_message
from mailflow.questions import load_questions
from mailflow.scrub import scrub_answer

MAIL_DIR = Path(__file__).parent / "mail"
QUESTIONS_FILE = Path(__file__).parent.parent / "questions.txt"
EXPECTED: dict[str, dict] = json.loads((MAIL_DIR / "expected.json").read_text(encoding="utf-8"))
ALL_QUESTIONS = tuple(range(1, 9))

REPLIES = sorted(name for name, case in EXPECTED.items() if case["kind"] in ("complete", "incomplete"))
NOT_ANSWERS = sorted(name for name, case in EXPECTED.items() if case["kind"] in ("request", "automatic"))
WITH_SCRUBBED = sorted(name for name in REPLIES if EXPECTED[name].get("scrubbed"))
WITH_SENDER = sorted(name for name, case in EXPECTED.items() if case.get("from_name"))


@cache
def questions() -> tuple[str, ...]:
    return tuple(load_questions(QUESTIONS_FILE))


@cache
def parsed(name: str):
    return parse_message((MAIL_DIR / name).read_bytes())


@cache
def answers_of(name: str):
    return extract_answers(parsed(name), questions())


def test_questions_file_has_the_eight_questions_in_order():
    qs = questions()
    assert len(qs) == 8
    assert qs[0] == "What kind of work are you looking for?"
    assert qs[7] == "Is there anything else you would like to say?"


def test_every_sample_mail_has_expectations_and_every_expectation_a_mail():
    on_disk = {path.name for path in MAIL_DIR.glob("*.eml")}
    assert on_disk == set(EXPECTED)
    assert {case["kind"] for case in EXPECTED.values()} <= {"complete", "incomplete", "request", "automatic"}


@pytest.mark.parametrize("name", REPLIES)
def test_answers_are_recovered_from_client_reply(name):
    case = EXPECTED[name]
    found = answers_of(name).found
    for number, substrings in case["answers"].items():
        assert int(number) in found, f"answer {number} not found"
        for substring in substrings:
            assert substring in found[int(number)], f"answer {number} lacks {substring!r}: {found[int(number)]!r}"


@pytest.mark.parametrize("name", REPLIES)
def test_unanswered_questions_are_reported_missing(name):
    case = EXPECTED[name]
    result = answers_of(name)
    assert list(result.missing) == case["missing"]
    assert set(result.found) == {int(n) for n in case["answers"]}
    assert set(result.found) | set(result.missing) == set(ALL_QUESTIONS)
    assert not set(result.found) & set(result.missing)


@pytest.mark.parametrize("name", REPLIES)
def test_signatures_quotes_and_boilerplate_stay_out_of_answers(name):
    case = EXPECTED[name]
    found = answers_of(name).found
    for number, text in found.items():
        for unwanted in case["not_in_answers"]:
            assert unwanted not in text, f"answer {number} contains {unwanted!r}: {text!r}"


@pytest.mark.parametrize("name", REPLIES)
def test_questions_themselves_are_not_part_of_answers(name):
    found = answers_of(name).found
    for number, text in found.items():
        for question in questions():
            assert question not in text, f"answer {number} contains the question {question!r}"


@pytest.mark.parametrize("name", WITH_SCRUBBED)
def test_identifying_details_in_answers_are_scrubbed(name):
    case = EXPECTED[name]
    mail = parsed(name)
    found = answers_of(name).found
    raw_text = "\n\n".join(found.values())
    for detail in case["scrubbed"]:
        assert detail in raw_text, f"{detail!r} should have been extracted before scrubbing"
    for number, text in found.items():
        cleaned = scrub_answer(text, [mail.from_name])
        for detail in case["scrubbed"]:
            assert detail not in cleaned, f"answer {number} still contains {detail!r} after scrubbing: {cleaned!r}"


@pytest.mark.parametrize("name", REPLIES)
def test_scrubbing_keeps_the_rest_of_the_answer(name):
    case = EXPECTED[name]
    mail = parsed(name)
    found = answers_of(name).found
    for number, substrings in case["answers"].items():
        cleaned = scrub_answer(found[int(number)], [mail.from_name])
        for substring in substrings:
            if any(detail in substring for detail in case.get("scrubbed", ())):
                continue
            assert substring in cleaned, f"scrubbing removed {substring!r} from answer {number}: {cleaned!r}"


@pytest.mark.parametrize("name", REPLIES)
def test_answer_paragraphs_are_kept_and_whitespace_normalised(name):
    case = EXPECTED[name]
    found = answers_of(name).found
    for number, text in found.items():
        paragraphs = text.split("\n\n")
        assert len(paragraphs) == case["paragraphs"].get(str(number), 1), f"answer {number}: {text!r}"
        for paragraph in paragraphs:
            assert paragraph == " ".join(paragraph.split()), f"answer {number} paragraph not normalised: {paragraph!r}"
            assert paragraph, f"answer {number} has an empty paragraph"


@pytest.mark.parametrize("name", NOT_ANSWERS)
def test_no_answers_are_found_in_requests_and_automatic_mail(name):
    assert answers_of(name).found == {}


@pytest.mark.parametrize("name", WITH_SENDER)
def test_sender_name_is_decoded_from_the_from_header(name):
    assert parsed(name).from_name == EXPECTED[name]["from_name"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reply_headers_are_read(name):
    mail = parsed(name)
    raw = (MAIL_DIR / name).read_bytes()
    assert mail.message_id and mail.message_id.strip("<>") in raw.decode("latin-1")
    assert mail.subject
    assert "@" in mail.from_address
