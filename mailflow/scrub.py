"""Anonymise answers before anything is stored for, or rendered on, the site.

"Only you will know what number you are": email addresses, phone numbers, web
addresses (a profile link identifies as well as a name) and the sender's own name
are replaced by neutral markers inside the answers themselves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

EMAIL_MARK = "[email address removed]"
PHONE_MARK = "[phone number removed]"
LINK_MARK = "[link removed]"
NAME_MARK = "[name removed]"

# Both patterns are linear: a bounded local part anchored at its start, and a greedy URL
# whose trailing punctuation is given back afterwards (see _link). Lazy or unanchored
# versions take minutes on a long run of dots or letters.
_STRICT_EMAIL = re.compile(
    r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[\w-]+(?:\.[\w-]+)+", re.IGNORECASE
)
_URL = re.compile(
    r"(?:https?://|www\.|\b(?:linkedin|facebook|twitter|x|instagram|github)\.com/)[^\s<>]+", re.IGNORECASE
)
_TRAILING = ".,;:!?)]"
# A phone number: seven or more digits in groups, optionally with a country code,
# parentheses and the usual separators. Year ranges ("2019-2021") are not phones.
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d\s().\-/]{5,}\d(?![\w])")
_YEAR_RANGE = re.compile(r"^(?:19|20)\d\d\s*[-/]\s*(?:19|20)?\d\d$")


def scrub_answer(text: str, sender_names: Sequence[str] = ()) -> str:
    """Replace identifying details in one answer with neutral markers."""
    text = _STRICT_EMAIL.sub(EMAIL_MARK, text)
    text = _URL.sub(_link, text)
    text = _PHONE.sub(_phone_or_not, text)
    for name in _name_parts(tuple(sender_names)):  # longest first, one at a time
        if _may_occur(text, name):
            text = _name_pattern(name).sub(NAME_MARK, text)
    return text


def redact_addresses(text: str) -> str:
    """For error texts that are stored, logged or shown to the host: a server's "550 <jane@...>
    unknown" must not put a job-seeker's address in a log or next to an interview in the digest."""
    return _STRICT_EMAIL.sub("[address]", text)


def scrub_answers(found: Mapping[int, str], limit: int, from_name: str, from_address: str) -> dict[int, str]:
    """A reply's answers as they may be published: cut to `limit`, identifying details removed."""
    names = sender_names(from_name, from_address)
    return {n: scrub_answer(shorten(text, limit), names) for n, text in found.items()}


def shorten(text: str, limit: int) -> str:
    """Cut an overlong answer at a word boundary; the author is told (see numbered.txt)."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip() + " […]"


def sender_names(from_name: str, from_address: str) -> list[str]:
    """The names a sender may sign with: the display name, and the name in the address
    ("jane.roe@..." -> "Jane Roe"), for mail sent without a display name."""
    local = from_address.split("@", 1)[0]
    parts = [part.capitalize() for part in re.split(r"[._+\-\d]+", local) if len(part) >= 3 and part.isalpha()]
    return [name for name in (from_name, " ".join(parts)) if name]


def _link(match: re.Match[str]) -> str:
    url = match.group(0)
    kept = url.rstrip(_TRAILING)
    return LINK_MARK + url[len(kept) :]


def _phone_or_not(match: re.Match[str]) -> str:
    candidate = match.group(0)
    digits = sum(ch.isdigit() for ch in candidate)
    if digits < 7 or _YEAR_RANGE.match(candidate.strip()):
        return candidate
    return PHONE_MARK


# The only characters that match an ASCII letter case-insensitively in a pattern, besides
# that letter's own two cases: the dotted and dotless i, the Kelvin sign, the long s.
_ASCII_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u212a": "k", "\u017f": "s"})


def _may_occur(text: str, name: str) -> bool:
    """Whether the text may contain the name, by plain substring search: a test that can say
    yes wrongly but never misses a name the pattern would find. Most answers name nobody,
    and then need no pattern compiled for this sender (a third of a millisecond, a sixth of
    reading a reply)."""
    if " " not in name:  # a single part, matched only as written
        return name in text
    if not name.isascii():
        return True  # any case of a name beyond ASCII: leave it to the pattern
    return name.lower() in text.translate(_ASCII_FOLD).lower()


@lru_cache(maxsize=256)
def _name_pattern(name: str) -> re.Pattern[str]:
    """The full name in any case; a single part ("Will", "Hope") only as written, so that the
    words "will" and "hope" in an answer survive."""
    return re.compile(rf"(?<!\w){re.escape(name)}(?!\w)", re.IGNORECASE if " " in name else 0)


@lru_cache(maxsize=64)
def _name_parts(names: tuple[str, ...]) -> tuple[str, ...]:
    """The sender's display name and each part of it long enough to be a name, longest first."""
    parts: set[str] = set()
    for name in names:
        cleaned = re.sub(r"[\"'()<>,]", " ", name).strip()
        if not cleaned or "@" in cleaned:
            continue
        parts.add(" ".join(cleaned.split()))
        parts.update(word for word in cleaned.split() if len(word) >= 3 and word[0].isupper())
    return tuple(sorted(parts, key=len, reverse=True))
