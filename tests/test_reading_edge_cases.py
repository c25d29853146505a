"""Edge cases in reading replies, each from a review finding: kind short answers survive,
signatures without a display name do not reach a page, hostile sizes stay fast."""

from __future__ import annotations

import time

import pytest

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


@pytest.mark.parametrize(
    ("sender", "answer"),
    [
        ("Kate Sims", "KATE SIMS was my mentor."),
        ("Kate Sims", "\u212aate \u017fims was my mentor."),  # Kelvin sign, long s
        ("Ingrid Isik", "\u0130NGR\u0130D \u0131S\u0131K was my mentor."),  # dotted and dotless i
        ("\u00c9va Kov\u00e1cs", "\u00e9VA KOV\u00c1CS was my mentor."),
    ],
)
def test_a_full_name_is_scrubbed_in_any_case_even_through_unicode_case_folding(sender: str, answer: str) -> None:
    """Names are looked for by plain substring search before a pattern is compiled; that
    search must not miss what the pattern's case-insensitive match would find."""
    assert scrub_answer(answer, [sender]) == "[name removed] was my mentor."


@pytest.mark.parametrize(
    ("names", "answer", "scrubbed"),
    [
        (sender_names("Mary Jane", "jane.watson@example.net"), "MARY JANE WATSON", "MARY [name removed]"),
        (["Ann Lee", "Lee Van Dyke"], "ann lee van dyke", "ann [name removed]"),
    ],
)
def test_overlapping_names_are_scrubbed_longest_first(names: list[str], answer: str, scrubbed: str) -> None:
    """A display name and the name in the address can overlap: the longer one goes first,
    so the surname does not survive next to the first name's marker (a single pattern for
    all names took the leftmost match and left it)."""
    assert scrub_answer(answer, names) == scrubbed


def test_scrubbing_a_huge_hostile_answer_stays_fast() -> None:
    started = time.perf_counter()
    scrub_answer("a" * 200_000 + " http://a" + "." * 200_000 + "x")
    assert time.perf_counter() - started < 2


def test_many_trailing_blank_lines_stay_fast() -> None:
    answers = {**FULL, 8: "Done." + "\n" * 100_000}
    started = time.perf_counter()
    assert read(answers)[8] == "Done."
    assert time.perf_counter() - started < 10
