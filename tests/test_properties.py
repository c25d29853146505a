"""Property-based tests: the parser, the classifier and the answer reader never raise, whatever
arrives (random bytes, random MIME, mutated real mail), and two promises hold for any text:
scrubbing removes every address and phone number, and answers written under the quoted
questions come back word for word."""

from __future__ import annotations

import base64
import quopri
import re
import unicodedata
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mailflow.answers import extract_answers
from mailflow.classify import Context, Verdict, classify
from mailflow.parsing import ParsedMail, parse_message
from mailflow.render import Renderer, default_templates_dir
from mailflow.scrub import scrub_answer
from mailflow.testing import make_reply

from conftest import QUESTIONS
from corpus import corpus_files

CONTEXT = Context(own_addresses=frozenset({"interview@jobseekers.example"}), max_message_bytes=1_000_000)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@lru_cache(maxsize=1)
def boilerplate() -> tuple[str, ...]:
    """The lines of our own questionnaire, as the worker passes them to the answer reader."""
    context = {
        "site_name": "The Job-Seeker's Interview",
        "from_name": "The Job-Seeker's Interview",
        "questions": QUESTIONS,
        "min_answers": 4,
    }
    return tuple(Renderer(default_templates_dir()).email("questionnaire", **context).text.splitlines())


def read_everything(raw: bytes) -> ParsedMail:
    """What the worker does with every message before deciding; none of it may raise."""
    mail = parse_message(raw)
    assert isinstance(mail, ParsedMail)
    assert mail.size == len(raw)
    for single_line in (mail.subject, mail.from_name, mail.from_address):
        assert "\r" not in single_line and "\n" not in single_line, single_line
    assert mail.from_address == mail.from_address.strip().lower()
    verdict = classify(mail, CONTEXT)
    assert verdict.verdict in set(Verdict)
    answers = extract_answers(mail, QUESTIONS, boilerplate())
    assert set(answers.found) | set(answers.missing) == set(range(1, len(QUESTIONS) + 1))
    assert all(text.strip() for text in answers.found.values())
    return mail


# (a) random bytes ------------------------------------------------------------------------


@PROPERTY
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    read_everything(raw)


@PROPERTY
@given(
    st.lists(
        st.sampled_from(
            [
                b"From: ",
                b"Subject: ",
                b"Content-Type: multipart/mixed; boundary=",
                b"--",
                b"\r\n",
                b"\n",
                b"\r",
                b"\x00",
                b"=?",
                b"?=",
                b"?q?",
                b"?b?",
                b"utf-8",
                b">",
                b"1. What kind of work are you looking for?",
                b"MIME-Version: 1.0",
                b":",
                b'"',
                b"<",
                b"@",
                b"=\r\n",
                b"=C3=A9",
                b"\xff\xfe",
                b"\xc3",
                b"begin 644 x\n",
            ]
        ),
        max_size=60,
    )
)
def test_random_mail_shaped_tokens_never_raise(tokens: list[bytes]) -> None:
    read_everything(b"".join(tokens))


# (b) structured random messages ----------------------------------------------------------

CHARSETS = [
    "utf-8",
    "us-ascii",
    "iso-8859-1",
    "windows-1252",
    "koi8-r",
    "gb2312",
    "iso-2022-jp",
    "utf-7",
    "shift_jis",
    "x-unknown",
    "",
    'utf-8"',
    "latin-1'en'",
    "8859-15",
]
HEADER_NAMES = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Date",
    "Reply-To",
    "Sender",
    "Return-Path",
    "Auto-Submitted",
    "Precedence",
    "List-Id",
    "X-Mailer",
    "Content-Type",
    "Content-Transfer-Encoding",
    "MIME-Version",
    "X-Auto-Response-Suppress",
    "Received",
]
ODD = st.sampled_from(
    [
        "\r\n",
        "\n",
        "\r",
        "\x00",
        "\r\n ",
        "\t",
        "\x0b",
        "\u2028",
        "\ufeff",
        "\x85",
        ":",
        ";",
        '"',
        "<",
        ">",
        "@",
        ",",
        "=?",
        "?=",
        "\\",
    ]
)
LOOSE_TEXT = st.lists(st.one_of(st.text(max_size=12), ODD), max_size=8).map("".join)


@st.composite
def encoded_words(draw: st.DrawFn) -> str:
    charset = draw(st.sampled_from(CHARSETS))
    payload = draw(LOOSE_TEXT)
    if draw(st.booleans()):
        try:
            data = payload.encode(charset or "utf-8", errors="replace")
        except LookupError:
            data = payload.encode("utf-8")
        if draw(st.booleans()):
            return f"=?{charset}?b?{base64.b64encode(data).decode()}?="
        return f"=?{charset}?q?{quopri.encodestring(data, header=True).decode()}?="
    return f"=?{charset}?{draw(st.sampled_from(['b', 'q', 'x', '']))}?{payload}?="  # malformed on purpose


@st.composite
def header_lines(draw: st.DrawFn) -> list[str]:
    lines = []
    for _ in range(draw(st.integers(0, 10))):
        name = draw(st.one_of(st.sampled_from(HEADER_NAMES), st.from_regex(r"\A[!-9;-~]{1,20}\Z")))
        parts = draw(st.lists(st.one_of(LOOSE_TEXT, encoded_words(), st.emails().map(lambda a: f"<{a}>")), max_size=4))
        lines.append(f"{name}:{draw(st.sampled_from([' ', '', '  ']))}{' '.join(parts)}")
    return lines


def encode_body(data: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.encodebytes(data)
    if encoding == "quoted-printable":
        return quopri.encodestring(data)
    return data


@st.composite
def mime_parts(draw: st.DrawFn, depth: int = 0) -> tuple[list[str], bytes]:
    """A MIME entity: its header lines and its body (which for a multipart holds its children)."""
    if depth < 3 and draw(st.integers(0, 3)) == 0:
        subtype = draw(st.sampled_from(["mixed", "alternative", "related", "report", "digest", "signed"]))
        boundary = draw(st.one_of(st.from_regex(r"\A[0-9A-Za-z'()+_,./:=? -]{0,70}\Z"), st.just("")))
        children = draw(st.lists(mime_parts(depth + 1), max_size=4))
        declared = draw(st.sampled_from([boundary, boundary, boundary[:-1], boundary + "x"]))
        headers = [f'Content-Type: multipart/{subtype}; boundary="{declared}"']
        body = b"preamble\r\n"
        for child_headers, child_body in children:
            body += f"--{boundary}\r\n".encode() + "\r\n".join(child_headers).encode("utf-8", "surrogatepass")
            body += b"\r\n\r\n" + child_body + b"\r\n"
        if draw(st.booleans()):
            body += f"--{boundary}--\r\n".encode()
        return headers, body
    ctype = draw(
        st.sampled_from(
            [
                "text/plain",
                "text/html",
                "application/octet-stream",
                "message/rfc822",
                "message/delivery-status",
                "image/png",
                "text/enriched",
                "text",
            ]
        )
    )
    charset = draw(st.sampled_from(CHARSETS))
    encoding = draw(st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "binary", "bogus"]))
    params = f"; charset={charset}" if charset else ""
    if draw(st.booleans()):
        params += "; format=flowed" + draw(st.sampled_from(["", "; delsp=yes", "; delsp=no"]))
    text = draw(
        st.one_of(LOOSE_TEXT, st.just("1. What kind of work are you looking for? \r\nNursing, \r\nnights.\r\n"))
    )
    try:
        data = text.encode(charset or "utf-8", errors="replace")
    except LookupError:
        data = text.encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):
        data = encode_body(data, encoding)
    else:
        data = draw(st.binary(max_size=200))
    headers = [f"Content-Type: {ctype}{params}", f"Content-Transfer-Encoding: {encoding}"]
    if draw(st.booleans()):
        headers.append(
            f"Content-Disposition: {draw(st.sampled_from(['attachment', 'inline', 'x']))}; "
            f'filename="{draw(LOOSE_TEXT)}"'
        )
    return headers, data


@st.composite
def structured_messages(draw: st.DrawFn) -> bytes:
    top = draw(header_lines())
    mime_headers, body = draw(mime_parts())
    newline = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    head = newline.join([*top, "MIME-Version: 1.0", *mime_headers])
    raw = head.encode("utf-8", "surrogatepass") + (newline * 2).encode() + body
    return raw if newline == "\r\n" else raw.replace(b"\r\n", newline.encode())


@PROPERTY
@given(structured_messages())
def test_structured_random_messages_never_raise(raw: bytes) -> None:
    read_everything(raw)


# (c) mutations of real mail ----------------------------------------------------------------

SEED_CATEGORIES = (
    "reply",
    "html-only",
    "flowed",
    "charset",
    "malformed",
    "bounce",
    "auto-reply",
    "list",
    "multipart",
    "qp-base64",
    "attachment",
    "signature",
)


@lru_cache(maxsize=1)
def corpus_seeds() -> tuple[bytes, ...]:
    """A handful of small real messages: the first of each category, under 40 kB."""
    seeds: dict[str, bytes] = {}
    for item in corpus_files():
        if item.path.stat().st_size > 40_000:
            continue
        for category in SEED_CATEGORIES:
            if category in item.categories and category not in seeds:
                seeds[category] = item.path.read_bytes()
    return tuple(dict.fromkeys(seeds.values()))


@st.composite
def mutated(draw: st.DrawFn, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        where = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "truncate", "duplicate-header", "boundary", "insert", "delete"]))
        if kind == "flip":
            data[where] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[where:]
        elif kind == "duplicate-header":
            head_end = data.find(b"\n\n") if b"\n\n" in data else data.find(b"\r\n\r\n")
            lines = bytes(data[: max(head_end, 0)]).splitlines(keepends=True)
            if lines:
                line = draw(st.sampled_from(lines))
                data[0:0] = line * draw(st.integers(1, 3))
        elif kind == "boundary":
            found = re.search(rb'boundary="?([^";\r\n]+)', bytes(data), re.IGNORECASE)
            if found:
                replacement = draw(st.binary(max_size=12))
                data = bytearray(bytes(data).replace(found.group(1), replacement, draw(st.integers(1, 3))))
        elif kind == "insert":
            data[where:where] = draw(st.sampled_from([b"\r\n", b"\n\n", b"\x00", b"\r", b"--", b"=?utf-8?b?", b"\xff"]))
        else:
            del data[where : where + draw(st.integers(1, 64))]
    return bytes(data)


@PROPERTY
@given(st.data())
def test_mutated_corpus_messages_never_raise(data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(corpus_seeds()), label="seed")
    read_everything(data.draw(mutated(seed), label="mutated"))


def test_the_mutation_seeds_cover_the_shapes_that_matter() -> None:
    assert len(corpus_seeds()) >= 8


# Scrubbing ---------------------------------------------------------------------------------

WORDS = st.text(alphabet=st.characters(codec="utf-8", categories=["L", "Zs", "P"]), max_size=30)
LOCAL = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._%+-]{0,20}\Z")
DOMAIN = st.from_regex(r"\A[a-z0-9]{1,12}(?:\.[a-z0-9-]{1,10}){0,2}\.[a-z]{2,6}\Z")
DIGIT_GROUPS = st.lists(st.from_regex(r"\A[0-9]{2,4}\Z"), min_size=2, max_size=4)


@st.composite
def phone_numbers(draw: st.DrawFn) -> str:
    groups = draw(DIGIT_GROUPS)
    assume(sum(len(g) for g in groups) >= 7)
    separator = draw(st.sampled_from([" ", "-", ".", "", "/"]))
    number = separator.join(groups)
    prefix = draw(st.sampled_from(["", "+44 ", "+1-", "0033 ", "+49 (0) ", "("]))
    if prefix == "(":
        number = f"({groups[0]}) " + separator.join(groups[1:])
        prefix = ""
    candidate = prefix + number
    # A year range is not a phone number, by design (scrub.py keeps "2019-2021").
    assume(not re.fullmatch(r"(?:19|20)\d\d\s*[-/]\s*(?:19|20)?\d\d", candidate))
    return candidate


@PROPERTY
@given(
    WORDS,
    st.tuples(LOCAL, DOMAIN).map("@".join),
    st.sampled_from([" ", "\n", ", ", " (", ": ", " <", "\n\n"]),
    phone_numbers(),
    st.sampled_from([" ", ". ", ")\n", "> ", ", "]),
    WORDS,
)
def test_scrubbed_answer_keeps_no_email_address_or_phone_number(
    before: str, address: str, joiner: str, phone: str, closer: str, after: str
) -> None:
    assume(not re.search(r"\d", before + after))
    text = f"{before}{joiner}{address}{closer}call me on {phone}{closer}{after}"
    scrubbed = scrub_answer(text, ["Alex Example"])
    assert address.lower() not in scrubbed.lower()
    assert "@" + address.split("@")[1] not in scrubbed
    phone_digits = re.sub(r"\D", "", phone)
    assert phone_digits[-7:] not in re.sub(r"\D", "", scrubbed), scrubbed


# Answers survive the round trip ----------------------------------------------------------

ANSWER_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Co", "Cn", "Zl", "Zp"]), max_size=200
)
# Shapes the reader drops or trims on purpose, so the property leaves them out:
QUOTED = re.compile(r"^\s*>")  # a line starting with ">" is quoted text, not the person's own
LABEL = re.compile(r"^\s*(?:a|answer|r|reply)\s*(?::|[.)-](?=\s))", re.IGNORECASE)  # "A: ..." labels are stripped
INVISIBLE = re.compile(r"[\u200b\ufeff]")  # zero-width characters are removed from every line


def visible_words(text: str) -> str:
    return unicodedata.normalize("NFC", " ".join(INVISIBLE.sub("", text).split()))


def read_back(answers: dict[int, str]) -> dict[int, str]:
    return extract_answers(parse_message(make_reply(answers, questions=QUESTIONS)), QUESTIONS, boilerplate()).found


@PROPERTY
@given(st.dictionaries(st.integers(1, len(QUESTIONS)), ANSWER_TEXT, min_size=1, max_size=len(QUESTIONS)))
def test_every_answer_written_under_its_question_is_read_back(answers: dict[int, str]) -> None:
    assume(not any(QUOTED.match(text) or LABEL.match(text) for text in answers.values()))
    found = read_back(answers)
    for number, text in answers.items():
        words = visible_words(text)
        if not any(ch.isalnum() for ch in words):
            continue  # punctuation alone ("--", "—") reads as a signature separator: not an answer
        assert number in found, f"answer {number} lost: {text!r}"
        assert words in visible_words(found[number]), (number, text, found[number])


@pytest.mark.parametrize(
    "answer",
    [
        "A-levels and an apprenticeship helped most.",
        "a.m. shifts only, school run.",
        "R-programming courses online.",
        "Reply-all mails from recruiters.",
    ],
)
def test_an_answer_starting_with_a_letter_and_a_hyphen_or_dot_keeps_its_first_word(answer: str) -> None:
    assert read_back({4: answer}).get(4) == answer


@pytest.mark.parametrize(
    "answer", ["Thanks to my mentor.", "Love what you do", "Take care of yourself first.", "Sincerely hope it helps."]
)
def test_an_answer_that_starts_like_a_sign_off_is_kept(answer: str) -> None:
    assert read_back({4: answer, 8: answer}) == {4: answer, 8: answer}
