"""Incoming bytes -> ParsedMail: mail-parser does the MIME work; its loose types stop here.

`parse_message` never raises. Whatever the input (no headers, broken MIME, unknown
charsets, NUL bytes), the result says what could be read and lists what was wrong in
`defects`, so the classifier can decide and the worker can record a reason.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses

import mailparser

logger = logging.getLogger(__name__)

MSGID_RE = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True)
class ParsedMail:
    """What the rest of mailflow may know about a message."""

    from_name: str = ""
    from_address: str = ""
    subject: str = ""
    message_id: str = ""
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    text_plain: str | None = None
    text_html: str | None = None
    content_types: tuple[str, ...] = ()
    attachment_count: int = 0
    size: int = 0
    defects: tuple[str, ...] = field(default_factory=tuple)

    def header(self, name: str) -> str:
        """The first value of a header ('' if absent), case-insensitively."""
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), "")

    def header_values(self, name: str) -> tuple[str, ...]:
        name = name.lower()
        return tuple(value for key, value in self.headers if key.lower() == name)

    def has_header(self, name: str) -> bool:
        name = name.lower()
        return any(key.lower() == name for key, _ in self.headers)


def parse_message(raw: bytes) -> ParsedMail:
    """Parse raw RFC 5322 bytes; never raises (see module docstring)."""
    defects: list[str] = []
    try:
        parsed = mailparser.parse_from_bytes(raw)
        message: Message = parsed.message
        plain = _first_text(parsed.text_plain)
        html = _first_text(parsed.text_html)
        defects.extend(str(d) for d in (parsed.defects_categories or ()))
        attachments = len(parsed.attachments or ())
    except Exception as exc:  # noqa: BLE001 - mail-parser fails on some broken MIME; the stdlib still reads it
        logger.debug("mail-parser failed (%s); falling back to the standard library", exc)
        defects.append(f"mail-parser: {type(exc).__name__}")
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        plain, html, attachments = _stdlib_bodies(message)
    headers = _headers(message)
    from_name, from_address = _sender(message)
    if plain is not None:
        plain = _unflow_if_flowed(message, plain)
    return ParsedMail(
        from_name=from_name,
        from_address=from_address,
        subject=_one_line(_decoded(message.get("Subject", ""))),
        message_id=_first_msgid(_decoded(message.get("Message-ID", ""))),
        in_reply_to=tuple(MSGID_RE.findall(_decoded(message.get("In-Reply-To", "")))),
        references=tuple(MSGID_RE.findall(_decoded(message.get("References", "")))),
        headers=headers,
        text_plain=plain,
        text_html=html,
        content_types=tuple(_content_types(message)),
        attachment_count=attachments,
        size=len(raw),
        defects=tuple(defects),
    )


def _first_text(parts: list[str] | None) -> str | None:
    for part in parts or ():
        if part and part.strip():
            return part
    return None


def _decoded(value: object) -> str:
    """A header value as text; RFC 2047 words decoded, undecodable bytes replaced."""
    text = str(value)
    if "=?" not in text:  # no encoded word: decoding would give it back as it is, at some cost
        return text.replace("\x00", "")
    try:
        text = str(make_header(decode_header(str(value))))
    except Exception:  # noqa: BLE001 - unknown charsets, broken encoded words: keep the raw text
        text = str(value)
    return text.replace("\x00", "")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _first_msgid(value: str) -> str:
    found = MSGID_RE.search(value)
    return found.group(0) if found else " ".join(value.split())[:998]


def _headers(message: Message) -> tuple[tuple[str, str], ...]:
    headers = []
    for key, value in message.items():
        headers.append((str(key), _one_line(_decoded(value))))
    return tuple(headers)


_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _sender(message: Message) -> tuple[str, str]:
    """The sender's name and address. The raw header is parsed first and only the name is
    decoded afterwards: an RFC 2047 encoded word is never an address (RFC 2047 section 5),
    so "=?utf-8?q?evil=40attacker?=" in a display name cannot choose who we reply to."""
    for header in ("From", "Sender", "Reply-To"):
        values = [_FOLD.sub("", str(value)) for value in message.get_all(header) or []]
        try:
            pairs = getaddresses(values)
        except Exception:  # noqa: BLE001 - a malformed address list reads as no address
            pairs = []
        for name, address in pairs:
            address = address.strip().lower()
            if "@" in address and not any(ch.isspace() for ch in address):
                return _one_line(_decoded(name)), address
    return "", ""


def _content_types(message: Message) -> list[str]:
    try:
        return [part.get_content_type() for part in message.walk()]
    except Exception:  # noqa: BLE001 - a broken tree still has a top-level type
        return [message.get_content_type()]


def _unflow_if_flowed(message: Message, text: str) -> str:
    """Undo RFC 3676 format=flowed soft line breaks in the first flowed text/plain part."""
    for part in _safe_walk(message):
        if part.get_content_type() != "text/plain":
            continue
        if str(part.get_param("format", "")).lower() == "flowed":
            return unflow(text, delsp=str(part.get_param("delsp", "")).lower() == "yes")
        return text
    return text


def _safe_walk(message: Message) -> list[Message]:
    try:
        return list(message.walk())
    except Exception:  # noqa: BLE001 - see _content_types
        return [message]


def unflow(text: str, *, delsp: bool = False) -> str:
    """Join the soft-broken lines of format=flowed text (RFC 3676 section 4.2).

    A line ending in a space continues on the next line, unless it is the signature
    separator. Quote depth must match for lines to join; space-stuffing is removed.
    """
    out: list[str] = []
    pending: str | None = None
    pending_depth = -1
    for line in text.replace("\r\n", "\n").split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        body = line[depth:]
        body = body.removeprefix(" ")  # space-stuffing
        if pending is not None and depth != pending_depth:
            out.append(">" * pending_depth + (" " if pending_depth else "") + pending)
            pending = None
        soft = body.endswith(" ") and body != "-- "
        if soft and delsp:
            body = body[:-1]
        pending = body if pending is None else pending + body
        pending_depth = depth
        if not soft:
            out.append(">" * depth + (" " if depth else "") + pending)
            pending = None
    if pending is not None:
        out.append(">" * pending_depth + (" " if pending_depth else "") + pending)
    return "\n".join(out)


def _stdlib_bodies(message: Message) -> tuple[str | None, str | None, int]:
    plain: str | None = None
    html: str | None = None
    attachments = 0
    for part in _safe_walk(message):
        if part.is_multipart():
            continue
        if part.get_filename() or part.get_content_maintype() not in ("text",):
            attachments += 1
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        try:
            text = data.decode(part.get_content_charset() or "utf-8", errors="replace")
        except (LookupError, ValueError):  # an unknown charset name
            text = data.decode("utf-8", errors="replace")
        if part.get_content_type() == "text/plain" and plain is None:
            plain = text
        elif part.get_content_type() == "text/html" and html is None:
            html = text
    return plain, html, attachments
