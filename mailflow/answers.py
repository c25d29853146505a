"""Reply text or HTML -> Answers(found, missing): the hard part of reading real mail.

People answer in every shape their client allows: inline under quoted questions, between
Gmail's split blockquotes, under an unquoted Outlook original, top-posted as "1) ...",
in a fresh message with the questions pasted in, with questions edited or unnumbered.
So the reader does not trust numbers or quoting alone. It finds the questions by their
text (fuzzy, so an edited word still matches; a number helps but is not required), takes
the unquoted lines under each as its answer, and falls back to numbered answers written
above the quoted questionnaire. Quote headers, signatures, sign-offs and client
boilerplate end an answer. The plain and the HTML part are both read; the richer wins.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import NamedTuple

import html2text

from mailflow.parsing import ParsedMail

MAX_TEXT = 200_000  # characters read per body; real replies are far shorter
MAX_QUESTION_LINE = 400
QUESTION_MATCH = 0.82  # similarity for a question found by its text alone
NUMBERED_QUESTION_MATCH = 0.6  # ... and when its number agrees too


class Target(NamedTuple):
    """A question, normalised; its matcher; and its letters counted, for the cheap bound."""

    text: str
    matcher: SequenceMatcher[str]
    letters: Counter[str]


_QUOTE = re.compile(r"^[ \t]*((?:>[ \t]?)+)")
_NUMBER = re.compile(
    r"^(?:(?:q|question)\s*(\d{1,2})\s*[.):-]?|\[(\d{1,2})\]|\((\d{1,2})\)|(\d{1,2})\s*[.):])\s*",
    re.IGNORECASE,
)
_ANSWER_PREFIX = re.compile(r"^(?:a|answer|r|reply)\s*(?::|[.)-](?=\s))\s*", re.IGNORECASE)
_QUOTE_HEADER = re.compile(
    r"^(?:on|am|le|el|il|em|op|den|w dniu)\b.{0,200}?"
    r"(?:wrote|writes|schrieb|a [ée]crit|escribi[óo]|ha scritto|escreveu|schreef|skrev|napisa[łl])\s*:?\s*$",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(
    r"^(?:-{2,}\s*(?:original message|forwarded message|urspr[üu]ngliche nachricht|message d'origine"
    r"|mensaje original)\s*-{2,}|_{10,}|-{10,}|={10,})$",
    re.IGNORECASE,
)
_HEADER_BLOCK_START = re.compile(r"^\**(?:from|de|von|van|da)\s*:\**\s*\S", re.IGNORECASE)
_HEADER_BLOCK_NEXT = re.compile(
    r"^\**(?:sent|date|to|subject|cc|envoy[ée]|gesendet|datum|an|betreff|enviado|fecha|para|asunto|objet|[àa])\s*:",
    re.IGNORECASE,
)
_CLIENT_BOILERPLATE = re.compile(
    r"^(?:sent from (?:my |the )?\w.*|sent with \w.*|get outlook for \w.*|sent from mail for windows.*"
    r"|von meinem \w.* gesendet|envoy[ée] de mon \w.*|enviado desde mi \w.*|inviato da(?:l mio)? \w.*"
    r"|sent via \w.*|download (?:the )?\w+ app.*)$",
    re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"^(?:thanks|thank you|thankyou|many thanks|thx|best|best wishes|best regards|kind regards|warm regards"
    r"|regards|cheers|sincerely|yours|all the best|warmly|take care|cordially|with thanks|love"
    r"|saludos|un saludo|atentamente|cordialement|bien cordialement|tr[èe]s cordialement|amicalement|bises"
    r"|bien [àa] vous|gr[üu](?:ß|ss)e|liebe gr[üu](?:ß|ss)e"
    r"|mit freundlichen gr[üu](?:ß|ss)en|viele gr[üu](?:ß|ss)e|groetjes|met vriendelijke groet)"
    r"(?:\s*[,!.]?|(?:\s+[\w']+){1,3}\s*[,!])$",
    re.IGNORECASE,
)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")  # never valid in a page or XML
_NAME_LINE = re.compile(r"^[A-Z][\w'’-]*\.?(?:\s+[A-Z][\w'’-]*\.?){0,2}$")  # "Jane Roe", "J. Roe"
_PUNCTUATION = re.compile(r"[^\w\s]")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>|])")


@dataclass(frozen=True)
class Answers:
    """Answers by 1-based question number; paragraphs separated by a blank line."""

    found: dict[int, str]
    missing: tuple[int, ...]


@dataclass(frozen=True)
class _Line:
    depth: int
    text: str


@dataclass(frozen=True)
class _Marker:
    index: int
    number: int
    consumed: int
    remainder: str


def extract_answers(
    mail: ParsedMail, questions: Sequence[str], boilerplate: Sequence[str] = (), *, trust_numbers: bool = False
) -> Answers:
    """Find the answers in a reply; `boilerplate` lists lines of our own questionnaire to drop.

    `trust_numbers` accepts "3. ..." lines as answers even without the questionnaire below
    them: right for a reply to our own confirmation, where the context is certain.
    """
    noise = set(_boilerplate_lines(tuple(boilerplate))) | _name_lines(mail.from_name)
    found: dict[int, str] = {}
    for text in _bodies(mail):  # keep the first best, plain before HTML
        if len(found) == len(questions):
            break  # every question answered: the HTML cannot do better
        candidate = _answers_from_text(text[:MAX_TEXT], questions, noise, trust_numbers)
        if len(candidate) > len(found):
            found = candidate
    missing = tuple(n for n in range(1, len(questions) + 1) if n not in found)
    return Answers(found=dict(sorted(found.items())), missing=missing)


@functools.lru_cache(maxsize=8)
def _boilerplate_lines(boilerplate: tuple[str, ...]) -> frozenset[str]:
    """Our questionnaire's own lines, normalised once rather than for every reply."""
    return frozenset(_normalise(line) for line in boilerplate if line.strip())


def _bodies(mail: ParsedMail) -> Iterator[str]:
    """The plain text, then the HTML as text, converted only when it is read."""
    if mail.text_plain:
        yield mail.text_plain
    if mail.text_html:
        yield html_to_text(mail.text_html)


def html_to_text(html: str) -> str:
    """HTML -> text with blockquotes as '>' quoting, which is what the reader understands."""
    converter = html2text.HTML2Text(bodywidth=0)
    converter.ignore_links = True
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_tables = True
    converter.unicode_snob = True
    try:
        text = converter.handle(html[: MAX_TEXT * 4])
    except Exception:  # noqa: BLE001 - html2text on pathological markup; the tags stripped crudely still read
        text = re.sub(r"<[^>]+>", " ", html)
    return _MD_ESCAPE.sub(r"\1", text)


def _answers_from_text(text: str, questions: Sequence[str], noise: set[str], trust_numbers: bool) -> dict[int, str]:
    lines = _split_lines(text)
    markers = _find_question_markers(lines, _targets(tuple(questions)))
    found: dict[int, str] = {}
    for position, marker in enumerate(markers):
        end = markers[position + 1].index if position + 1 < len(markers) else len(lines)
        body = lines[marker.index + marker.consumed : end]
        first = [_Line(0, marker.remainder)] if marker.remainder else []
        answer = _answer_from_lines(first + body, noise)
        if answer and marker.number not in found:
            found[marker.number] = answer
    # Numbered lines above the questions count as answers only when our questionnaire is
    # really there below them: otherwise any mail with a numbered list would "answer" it.
    if trust_numbers or len({marker.number for marker in markers}) * 2 >= len(questions):
        head = lines[: markers[0].index] if markers else lines
        for number, answer in _top_posted_answers(head, len(questions), noise, 1 if trust_numbers else 2).items():
            found.setdefault(number, answer)
    return found


@functools.lru_cache(maxsize=8)
def _targets(questions: tuple[str, ...]) -> list[Target]:
    """One matcher per question, reused for every line of every reply: SequenceMatcher
    indexes its second sequence once, and that indexing was most of the cost of reading a
    reply. (Each process reads on one thread: the worker's, or its background reader's.)"""
    return [Target(text, SequenceMatcher(None, "", text), Counter(text)) for text in map(_normalise, questions)]


def _split_lines(text: str) -> list[_Line]:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
    text = _CONTROL.sub("", text.replace("\u200b", "").replace("\ufeff", ""))
    lines = []
    for raw in text.split("\n"):
        quote = _QUOTE.match(raw)
        depth = quote.group(1).count(">") if quote else 0
        lines.append(_Line(depth, (raw[quote.end() :] if quote else raw).strip()))
    return lines


def _normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("what's", "what is")
    return " ".join(_PUNCTUATION.sub(" ", text).split())


def _split_number(text: str) -> tuple[int | None, str]:
    match = _NUMBER.match(text)
    if not match:
        return None, text
    digits = next(group for group in match.groups() if group)
    return int(digits), text[match.end() :]


def _find_question_markers(lines: list[_Line], targets: list[Target]) -> list[_Marker]:
    markers: list[_Marker] = []
    index = 0
    while index < len(lines):
        marker = _match_question(lines, index, targets)
        if marker:
            markers.append(marker)
            index += marker.consumed
        else:
            index += 1
    return markers


def _match_question(lines: list[_Line], index: int, targets: list[Target]) -> _Marker | None:
    """Does a question start at this line? Questions may wrap over up to three lines."""
    line = lines[index]
    if not line.text or len(line.text) > MAX_QUESTION_LINE:
        return None
    number, _ = _split_number(line.text)
    joined = ""
    for consumed in range(1, 4):
        if index + consumed - 1 >= len(lines):
            break
        nxt = lines[index + consumed - 1]
        if consumed > 1 and (not nxt.text or nxt.depth != line.depth):
            break
        joined = f"{joined} {nxt.text}".strip()
        question, mark, remainder = joined.partition("?")
        if not mark and consumed > 1:
            continue
        best = _best_question(_split_number(question)[1], number, targets, has_mark=bool(mark))
        if best is not None:
            keep = remainder.strip() if line.depth == 0 else ""
            return _Marker(index, best, consumed, keep)
        if mark:
            break
    return None


def _best_question(text: str, number: int | None, targets: list[Target], *, has_mark: bool) -> int | None:
    candidate = _normalise(text)
    if len(candidate) < 8:
        return None
    best_number, best_ratio = None, 0.0
    threshold = QUESTION_MATCH if has_mark else 0.92
    letters: Counter[str] | None = None
    for position, (target, matcher, target_letters) in enumerate(targets, start=1):
        if abs(len(candidate) - len(target)) > max(len(target), 12) * 0.6:
            continue
        bonus = QUESTION_MATCH - NUMBERED_QUESTION_MATCH if number == position else 0.0
        if candidate == target:  # the question quoted as we sent it: the usual case
            ratio = 1.0 + bonus
        else:
            # The cheap upper bounds of difflib's ratio first, as its real_quick_ratio and
            # quick_ratio compute them (by length, by letters shared): most lines are nowhere
            # near any question. The letters of the line are counted once for all questions.
            needed, total = max(best_ratio, threshold) - bonus, len(candidate) + len(target)
            if 2.0 * min(len(candidate), len(target)) / total < needed:
                continue
            letters = letters if letters is not None else Counter(candidate)
            if 2.0 * sum(min(n, target_letters[letter]) for letter, n in letters.items()) / total < needed:
                continue
            matcher.set_seq1(candidate)
            ratio = matcher.ratio() + bonus
        if ratio > best_ratio:
            best_number, best_ratio = position, ratio
    return best_number if best_ratio >= threshold else None


def _is_boundary(lines: list[_Line], index: int) -> bool:
    """Does the person's own text end here (a quote header, a signature, client boilerplate)?"""
    text = lines[index].text
    if text in {"--", "-- ", "—"} or _SEPARATOR.match(text) or _CLIENT_BOILERPLATE.match(text):
        return True
    following = lines[index + 1].text if index + 1 < len(lines) else ""
    if _QUOTE_HEADER.match(text) or (len(text) < 200 and _QUOTE_HEADER.match(f"{text} {following}")):
        return True
    if _HEADER_BLOCK_START.match(text):
        window = lines[index + 1 : index + 6]
        return sum(1 for line in window if _HEADER_BLOCK_NEXT.match(line.text)) >= 2
    return False


def _own_lines(lines: list[_Line], noise: set[str]) -> list[str]:
    """The person's unquoted lines, up to where their own text ends."""
    kept: list[str] = []
    for index, line in enumerate(lines):
        if line.depth == 0 and _is_boundary(lines, index):
            break
        if line.depth == 0 and _normalise(line.text) not in noise:
            kept.append(line.text)
        elif line.depth == 0:
            kept.append("")
    return _drop_sign_off(kept, noise)


def _name_lines(from_name: str) -> set[str]:
    """Lines that are just the sender signing off: "Kayleigh", "Kayleigh x", "K. Morgan"."""
    words = [w for w in _normalise(from_name).split() if len(w) > 1]
    if not words:
        return set()
    names = {" ".join(words), words[0], f"{words[0]} {words[-1][0]}"}
    return names | {f"{name} {kiss}" for name in names for kiss in ("x", "xx", "xxx")}


def _drop_sign_off(kept: list[str], noise: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Drop a closing like "Best wishes," and the few short lines (a name) after it, and a
    trailing signature block ("Jane Roe / Acme Logistics, Leeds"). Never the whole answer:
    "Thank you for doing this!" may be all someone has to say."""
    end = len(kept)
    while end and (not kept[end - 1] or _normalise(kept[end - 1]) in noise):
        end -= 1
    kept = kept[:end]
    content = [i for i, text in enumerate(kept) if text]
    for position in range(len(content) - 1, max(len(content) - 6, -1), -1):
        index = content[position]
        if _SIGN_OFF.match(kept[index]) and len(kept[index]) <= 60:
            tail = [kept[i] for i in content[position + 1 :]]
            if position == 0 and not tail:
                break  # the whole answer is "Thank you for doing this!": keep it
            if len(tail) <= 4 and all(len(t) <= 60 for t in tail):
                return kept[:index]
    return _drop_signature_block(kept)


def _drop_signature_block(kept: list[str]) -> list[str]:
    """A last paragraph of a few short lines starting with a name is a signature, not an answer."""
    if "" not in kept:
        return kept
    blank = len(kept) - 1 - kept[::-1].index("")
    block = kept[blank + 1 :]
    has_answer = any(kept[:blank])
    is_short = 1 <= len(block) <= 4 and all(len(line) <= 40 and not line.endswith((".", "?", "!")) for line in block)
    if has_answer and is_short and _NAME_LINE.match(block[0]):
        return kept[:blank]
    return kept


def join_paragraphs(lines: list[str]) -> list[str]:
    """Lines -> paragraphs: blank lines separate them, hard wraps inside one are undone."""
    paragraphs: list[str] = []
    current: list[str] = []
    for text in [*lines, ""]:
        if text.strip():
            current.append(text)
        elif current:
            paragraphs.append(" ".join(" ".join(current).split()))
            current = []
    return paragraphs


def _answer_from_lines(lines: list[_Line], noise: set[str]) -> str:
    paragraphs = join_paragraphs(_own_lines(lines, noise))
    if paragraphs:
        paragraphs[0] = _ANSWER_PREFIX.sub("", paragraphs[0])
    return "\n\n".join(p for p in paragraphs if p)


def _top_posted_answers(lines: list[_Line], count: int, noise: set[str], at_least: int) -> dict[int, str]:
    """Answers written as "1) ..." above the quoted questionnaire, numbers rising."""
    starts: list[tuple[int, int, str]] = []
    for index, line in enumerate(lines):
        if line.depth == 0 and _is_boundary(lines, index):
            break
        if line.depth:
            continue
        number, rest = _split_number(line.text)
        if number and 1 <= number <= count and (not starts or number > starts[-1][1]):
            starts.append((index, number, rest))
    if len(starts) < at_least:
        return {}
    found: dict[int, str] = {}
    for position, (index, number, rest) in enumerate(starts):
        end = starts[position + 1][0] if position + 1 < len(starts) else len(lines)
        answer = _answer_from_lines([_Line(0, rest), *lines[index + 1 : end]], noise)
        if answer:
            found[number] = answer
    return found


def own_text(mail: ParsedMail) -> str:
    """What the person wrote themselves: unquoted, above any quote header or signature,
    sign-off kept (a comment's signature is part of what its author chose to write)."""
    text = mail.text_plain or (html_to_text(mail.text_html) if mail.text_html else "")
    lines = _split_lines(text[:MAX_TEXT])
    kept: list[str] = []
    for index, line in enumerate(lines):
        if line.depth == 0 and _is_boundary(lines, index):
            break
        if line.depth == 0:
            kept.append(line.text)
    return "\n".join(kept).strip()
