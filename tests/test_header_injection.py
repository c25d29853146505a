"""Header injection: CR/LF, encoded words and address tricks in what a sender controls (Subject,
From names, Message-ID, References, answers) never reach a header we send. Every outgoing email
goes to the sender's own address alone, carries only our headers, and parses cleanly."""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from mailflow.app import App, build_app
from mailflow.config import load_settings
from mailflow.models import InboundMessage
from mailflow.testing import make_reply, make_settings
from mailflow.worker import run_pass

from conftest import QUESTIONS, deliver

EVIL = "evil@attacker.example"
OUR_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "auto-submitted",
    "x-auto-response-suppress",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}
FULL = {n: f"My answer to question {n}." for n in range(1, len(QUESTIONS) + 1)}


def outgoing(app: App) -> list[tuple[bytes, EmailMessage]]:
    folder = app.settings.outgoing.path("path") / "new"
    paths = sorted(folder.iterdir()) if folder.exists() else []
    return [(p.read_bytes(), message_from_bytes(p.read_bytes(), policy=policy.default)) for p in paths]  # type: ignore[misc]


def assert_clean(raw: bytes, message: EmailMessage, recipient: str) -> None:
    """Exactly our headers, one recipient (the sender), nothing the sender wrote in any header."""
    head = raw.split(b"\n\n", 1)[0].decode("ascii")  # our headers are 7-bit: anything else leaked in
    names = [name.lower() for name in message]
    assert set(names) <= OUR_HEADERS, names
    assert len(names) == len(set(names)), f"a header appears twice: {names}"
    assert message["To"] == recipient
    assert [address.addr_spec for address in message["To"].addresses] == [recipient]
    assert not re.search(r"(?im)(?:^|\s)b?cc\s*:", head), head
    assert EVIL not in head and "attacker" not in head
    assert not message.defects, message.defects
    for name, value in message.items():
        assert not getattr(value, "defects", ()), (name, value.defects)
        assert "\r" not in str(value) and "\n" not in str(value), (name, str(value))
    for line in head.split("\n"):
        assert line[:1] in (" ", "\t") or line.split(":", 1)[0].lower() in OUR_HEADERS, line


def states(app: App) -> list[tuple[str, str]]:
    with Session(app.engine) as session:
        return [(row.state, row.reason) for row in session.exec(select(InboundMessage).order_by(InboundMessage.id))]


def request(headers: str, body: str = "Hello, please send me the interview.") -> bytes:
    base = {"To": "interview@jobseekers.example", "Subject": "interview please", "Message-ID": "<req@example.org>"}
    lines = headers.strip("\r\n").split("\r\n") if headers.strip() else []
    given_names = {line.split(":", 1)[0].lower() for line in lines if ":" in line and line[:1] not in " \t"}
    for name, value in base.items():
        if name.lower() not in given_names:
            lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode("utf-8")


def run_one(app: App, raw: bytes) -> None:
    deliver(app, raw)
    run_pass(app)


SAFE_CASES = {
    "subject-encoded-crlf-bcc": "From: Sam <sam@example.org>\r\nSubject: =?utf-8?q?hi=0D=0ABcc:_evil@attacker.example?=",
    "subject-raw-folded-bcc": "From: Sam <sam@example.org>\r\nSubject: hi\r\n Bcc: evil@attacker.example",
    "subject-utf8-raw-crlf": "From: Sam <sam@example.org>\r\nSubject: caf\u00e9 \u2028Bcc: evil@attacker.example",
    "name-quoted-encoded-address": 'From: "=?utf-8?q?evil=40attacker=2Eexample?=" <sam@example.org>',
    "comment-encoded-address": "From: sam@example.org (=?utf-8?q?evil=40attacker=2Eexample?=)",
    "references-encoded-crlf-bcc": "From: Sam <sam@example.org>\r\n"
    "References: <a@example.org> =?utf-8?q?=0D=0ABcc=3A_evil=40attacker=2Eexample?= <b@example.org>",
    "references-folded-header-lookalike": "From: Sam <sam@example.org>\r\n"
    "References: <a@example.org>\r\n Bcc: evil@attacker.example\r\n <b@example.org>",
    "in-reply-to-crlf": "From: Sam <sam@example.org>\r\nIn-Reply-To: <x@example.org>\r\n Bcc: evil@attacker.example",
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    application = build_app(load_settings(make_settings(tmp_path / "site")))
    yield application
    application.close()


@pytest.mark.parametrize("headers", SAFE_CASES.values(), ids=SAFE_CASES.keys())
def test_hostile_headers_never_reach_our_reply(app: App, headers: str) -> None:
    run_one(app, request(headers))
    [(raw, message)] = outgoing(app)
    assert_clean(raw, message, "sam@example.org")
    assert states(app)[0][0] == "questionnaire_sent"


SENDER_SMUGGLING = {
    "name-encoded-address": "From: =?utf-8?q?evil=40attacker=2Eexample?= <sam@example.org>",
    "name-encoded-address-comma": "From: =?utf-8?q?evil=40attacker=2Eexample=2C?= <sam@example.org>",
    "name-encoded-crlf-bcc": "From: =?utf-8?q?Sam=0D=0ABcc=3A_evil=40attacker=2Eexample?= <sam@example.org>",
    "name-base64-address": "From: =?utf-8?b?ZXZpbEBhdHRhY2tlci5leGFtcGxlLCA=?= <sam@example.org>",
    "name-quoted-folded-bcc": 'From: "Sam\r\n Bcc: evil@attacker.example" <sam@example.org>',
    "name-encoded-angle-address": "From: =?utf-8?q?=3Cevil=40attacker=2Eexample=3E?= <sam@example.org>",
}


@pytest.mark.parametrize("headers", SENDER_SMUGGLING.values(), ids=SENDER_SMUGGLING.keys())
def test_an_encoded_display_name_cannot_choose_the_recipient(app: App, headers: str) -> None:
    run_one(app, request(headers))
    [(raw, message)] = outgoing(app)
    assert_clean(raw, message, "sam@example.org")


MESSAGE_ID_BREAKS = {
    "encoded-crlf": "From: Sam <sam@example.org>\r\nMessage-ID: =?utf-8?q?=3Cx=0D=0ABcc=3A_evil=40attacker=2Eexample=3E?=",
    "unterminated-folded": "From: Sam <sam@example.org>\r\nMessage-ID: <x@example.org\r\n Bcc: evil@attacker.example",
    "folded-inside": "From: Sam <sam@example.org>\r\nMessage-ID: <x\r\n @example.org>",
    "vertical-tab": "From: Sam <sam@example.org>\r\nMessage-ID: <x\x0b@example.org",
    "spaces-and-header-lookalike": "From: Sam <sam@example.org>\r\nMessage-ID: <a b Bcc: evil@attacker.example>",
}


@pytest.mark.parametrize("headers", MESSAGE_ID_BREAKS.values(), ids=MESSAGE_ID_BREAKS.keys())
def test_a_broken_message_id_still_gets_a_clean_reply(app: App, headers: str) -> None:
    run_one(app, request(headers))
    assert states(app)[0][0] == "questionnaire_sent", states(app)
    [(raw, message)] = outgoing(app)
    assert_clean(raw, message, "sam@example.org")


def test_addresses_that_cannot_go_in_a_to_header_get_no_reply(app: App) -> None:
    for index, sender in enumerate(
        [
            '"sam\\\r\n Bcc: evil@attacker.example"@example.org',
            "sam@example.org\r\n\tBcc: evil@attacker.example",
            "<sam@example.org,evil@attacker.example>",
            "sam%evil@attacker.example@example.org",
        ]
    ):
        deliver(app, request(f"From: {sender}\r\nMessage-ID: <odd-{index}@example.org>"))
    run_pass(app)
    for raw, message in outgoing(app):  # a reply may go out, but only to one clean address
        recipient = message["To"].addresses[0].addr_spec
        assert_clean(raw, message, recipient)
        assert "attacker" not in recipient
    assert "failed" not in {state for state, _ in states(app)}


def test_answers_with_header_lines_stay_in_the_body(app: App) -> None:
    answers = dict(FULL)
    answers[1] = "Retail.\r\nBcc: evil@attacker.example\r\nSubject: injected"
    answers[2] = "=?utf-8?q?=0D=0ABcc=3A_evil=40attacker=2Eexample?="
    answers[3] = "To: evil@attacker.example\n\nFrom: evil@attacker.example"
    run_one(app, make_reply(answers, sender="Sam <sam@example.org>", questions=QUESTIONS))
    assert states(app)[0][0] == "numbered"
    [(raw, message)] = outgoing(app)
    assert_clean(raw, message, "sam@example.org")


# A property over everything a sender controls at once ------------------------------------

PIECES = st.sampled_from(
    [
        "\r\n",
        "\n",
        "\r",
        "\r\n ",
        "\r\nBcc: evil@attacker.example",
        "Bcc:",
        "Cc: evil@attacker.example",
        "\x00",
        "\x0b",
        "\u2028",
        "\x85",
        "=?utf-8?q?=0D=0ABcc=3A_x?=",
        "=?utf-8?b?DQpCY2M6IHg=?=",
        "<",
        ">",
        '"',
        ",",
        ";",
        ":",
        "\\",
        "(",
        ")",
        "caf\u00e9",
        "\u4e2d\u6587",
        " ",
    ]
)
HOSTILE = st.lists(st.one_of(PIECES, st.text(alphabet="abcxyz ", max_size=5)), max_size=8).map("".join)
COUNTER = itertools.count()


def header_value(text: str) -> str:
    """A header value as a client could put it on the wire: bare line breaks become folds."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n ")


def with_headers(raw: bytes, headers: dict[str, str]) -> bytes:
    """`raw` with these headers replacing its own (folded continuation lines included)."""
    head, _, body = raw.partition(b"\n\n")
    kept, skipping = [], False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.split(b":", 1)[0].decode().lower() in {name.lower() for name in headers}
        if not skipping:
            kept.append(line)
    ours = [f"{name}: {value}".encode() for name, value in headers.items()]
    return b"\r\n".join(ours + kept) + b"\r\n\r\n" + body


@pytest.fixture(scope="module")
def shared_app() -> Iterator[App]:
    with tempfile.TemporaryDirectory() as folder:
        application = build_app(load_settings(make_settings(Path(folder) / "site")))
        yield application
        application.close()


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(subject=HOSTILE, name=HOSTILE, message_id=HOSTILE, references=HOSTILE, answer=HOSTILE, complete=st.booleans())
def test_whatever_a_sender_puts_in_headers_our_reply_is_clean(
    shared_app: App, subject: str, name: str, message_id: str, references: str, answer: str, complete: bool
) -> None:
    serial = next(COUNTER)
    sender = f"person{serial}@example.org"
    safe_name = name.replace("\\", "").replace('"', "")
    headers = {
        "From": f'"{header_value(safe_name)}" <{sender}>',
        "Subject": header_value(subject),
        "Message-ID": f"<{serial}.{header_value(message_id)}@example.org>",
        "References": header_value(references),
    }
    if complete:
        raw = with_headers(make_reply({**FULL, 1: answer or "Retail."}, questions=QUESTIONS), headers)
    else:
        raw = request("\r\n".join(f"{k}: {v}" for k, v in headers.items()))
    before = {raw_out for raw_out, _ in outgoing(shared_app)}
    run_one(shared_app, raw)
    fresh = [(raw_out, message) for raw_out, message in outgoing(shared_app) if raw_out not in before]
    assert states(shared_app)[-1][0] != "failed", states(shared_app)[-1]
    for raw_out, message in fresh:
        assert_clean(raw_out, message, sender)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=300).map(
        lambda t: t + "\n--=_" + t[:20] + "\n=_=_--\n"
    )
)
def test_a_body_never_breaks_the_structure_of_the_email_it_is_in(text: str) -> None:
    """Our own boundary starts with "=_", which quoted-printable text cannot contain: whatever
    an answer quotes, the email has exactly its two parts, each with the text as given."""
    from mailflow.render import RenderedEmail
    from mailflow.replies import compose

    raw = compose(RenderedEmail(subject="Your interview number is 00001", text=text, html=f"<p>{text}</p>"),
                  from_name="The Job-Seeker's Interview", from_address="interview@jobseekers.example",
                  recipient="a@example.net", message_id="<numbered.1@jobseekers.example>", answering=None)  # fmt: skip
    message = message_from_bytes(raw, policy=policy.default)
    parts = list(message.iter_parts())  # type: ignore[attr-defined]
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content() == text and parts[1].get_content() == f"<p>{text}</p>"


@settings(max_examples=300, deadline=None)
@given(
    subject=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=120),
    name=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40),
    references=st.lists(st.from_regex(r"<[a-z0-9.]{1,30}@[a-z]{1,12}\.example>", fullmatch=True), max_size=12),
)
def test_writing_short_headers_as_they_are_gives_the_same_bytes(subject: str, name: str, references: list[str]) -> None:
    """Replies skip the folding machinery for short ASCII header lines; the bytes are the
    ones the standard library's classic policy writes."""
    from email.header import Header
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText
    from email.utils import formataddr

    from mailflow.replies import _POLICY

    message = MIMEMultipart("alternative", boundary="=_0123456789abcdef")
    message["From"] = formataddr((name, "interview@jobseekers.example"), charset="utf-8")
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    if references:
        message["References"] = " ".join(references)
    message.attach(MIMEText(subject, "plain", "utf-8"))
    assert message.as_bytes(policy=_POLICY) == message.as_bytes()


@settings(max_examples=300, deadline=None)
@given(
    subject=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=120),
    name=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40),
    text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=300),
    references=st.lists(st.from_regex(r"<[a-z0-9.]{1,30}@[a-z]{1,12}\.example>", fullmatch=True), max_size=12),
)
def test_a_reply_is_written_byte_for_byte_as_the_email_package_writes_it(
    subject: str, name: str, text: str, references: list[str]
) -> None:
    """compose writes the frame of a reply itself, for speed: the bytes must be the ones the
    email package's MIME classes and generator write for the same reply."""
    import binascii
    from email.header import Header
    from email.mime.multipart import MIMEMultipart
    from email.mime.nonmultipart import MIMENonMultipart
    from email.utils import formataddr

    from mailflow.parsing import parse_message
    from mailflow.render import RenderedEmail
    from mailflow.replies import _POLICY, compose

    chain = " ".join(references)
    answering = parse_message(
        f"From: a@example.net\nMessage-ID: <asked.1@example.net>\nReferences: {chain}\n\nHello\n".encode()
    )
    html = f"<p>{text}</p>"
    raw = compose(RenderedEmail(subject=subject, text=text, html=html), from_name=name,
                  from_address="interview@jobseekers.example", recipient="a@example.net",
                  message_id="<numbered.1@jobseekers.example>", answering=answering)  # fmt: skip
    written = message_from_bytes(raw)
    boundary = written.get_boundary()
    assert boundary is not None and boundary.startswith("=_")
    message = MIMEMultipart("alternative", boundary=boundary)
    message["From"] = formataddr((name, "interview@jobseekers.example"), charset="utf-8")
    message["To"] = "a@example.net"
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    message["Date"] = str(written["Date"])
    message["Message-ID"] = "<numbered.1@jobseekers.example>"
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"
    message["In-Reply-To"] = "<asked.1@example.net>"
    message["References"] = " ".join(dict.fromkeys([*references[-10:], "<asked.1@example.net>"]))
    for subtype, body in (("plain", text), ("html", html)):
        part = MIMENonMultipart("text", subtype)
        part.set_param("charset", "utf-8")
        part["Content-Transfer-Encoding"] = "quoted-printable"
        part.set_payload(binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii"))
        message.attach(part)
    assert raw == message.as_bytes(policy=_POLICY)
