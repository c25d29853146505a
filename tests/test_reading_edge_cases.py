"""Edge cases in reading replies, each from a review finding: kind short answers survive,
signatures without a display name do not reach a page, hostile sizes stay fast."""

from __future__ import annotations

import time

from mailflow.answers import extract_answers
from mailflow.parsing import parse_message
from mailflow.scrub import scrub_answer, sender_names
from mailflow.testing import make_reply

from conftest import QUESTIONS

FULL = {n: f"Answer {n} in a few words." for n in range(1, 9)}


def read(answers: dict[int, str], sender: str = "Alex Example <alex@example.net>") -> dict[int, str]:
    return extract_answers(parse_message(make_reply(answers, sender=sender, questions=QUESTIONS)), QUESTIONS).found


def test_a_kind_one_line_answer_is_kept_even_if_it_sounds_like_a_sign_off() -> None:
    answers = {**FULL, 8: "Thank you for doing this!"}
    assert read(answers)[8] == "Thank you for doing this!"


def test_a_signature_block_after_the_last_answer_is_dropped() -> None:
    answers = {**FULL, 8: "Good luck to all.\n\nJane Roe\nAcme Logistics, Leeds"}
    assert read(answers, sender="jane.roe@acme.example")[8] == "Good luck to all."


def test_a_name_taken_from_the_address_is_scrubbed_when_there_is_no_display_name() -> None:
    names = sender_names("", "jane.roe@acme.example")
    assert scrub_answer("Jane helped me, said Jane Roe.", names) == "[name removed] helped me, said [name removed]."


def test_scrubbing_a_huge_hostile_answer_stays_fast() -> None:
    started = time.perf_counter()
    scrub_answer("a" * 200_000 + " http://a" + "." * 200_000 + "x")
    assert time.perf_counter() - started < 2


def test_many_trailing_blank_lines_stay_fast() -> None:
    answers = {**FULL, 8: "Done." + "\n" * 100_000}
    started = time.perf_counter()
    assert read(answers)[8] == "Done."
    assert time.perf_counter() - started < 10
