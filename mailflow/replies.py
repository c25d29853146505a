"""Decision -> rendered email -> OutboxItem row, in the same transaction as the decision.

The email is rendered once, with its final Message-ID, and stored; sending later (and
again after a crash) sends exactly these bytes. Every reply is marked as automatic
(RFC 3834) and threads under the message it answers.
"""

from __future__ import annotations

import binascii
import logging
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.policy import Compat32
from email.utils import format_datetime, formataddr
from typing import TYPE_CHECKING

from sqlalchemy import bindparam
from sqlmodel import Session, func, select

from mailflow.batch_facts import facts_for
from mailflow.db import add_row
from mailflow.models import InboundMessage, Interview, OutboxItem
from mailflow.parsing import MSGID_RE, ParsedMail, parse_message
from mailflow.render import RenderedEmail
from mailflow.states import now

if TYPE_CHECKING:
    from mailflow.app import App

logger = logging.getLogger(__name__)

_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
MAX_REFERENCES = 10


class _ShortHeadersAsTheyAre(Compat32):
    """The classic policy, except that a short ASCII header line is written as it is: folding
    it would change nothing, and the folding machinery was a third of the cost of a reply."""

    def fold_binary(self, name: str, value: str) -> bytes:
        if isinstance(value, str) and value.isascii() and len(name) + len(value) + 2 <= 78 and value.isprintable():
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_POLICY = _ShortHeadersAsTheyAre()


def is_replyable_address(address: str) -> bool:
    """Only a plain addr-spec may go into a To header: no names, commas or line breaks."""
    return bool(_ADDRESS.match(address)) and len(address) <= 254


_REPLIES_SINCE = (
    select(func.count())
    .select_from(OutboxItem)
    .where(OutboxItem.sender_hash == bindparam("sender_hash"), OutboxItem.created_at >= bindparam("since"))
)


def replies_today(session: Session, sender_hash: str) -> int:
    """Emails to this person in the last day, counting those queued in this transaction (each
    is written at once). The statement is built once and run without the ORM: this runs
    for every reply."""
    if (known := facts_for(session).replies_since) is not None:
        return known.get(sender_hash, 0)  # kept up to date by queue_email
    since = now() - timedelta(days=1)
    return int(session.connection().execute(_REPLIES_SINCE, {"sender_hash": sender_hash, "since": since}).scalar_one())


def last_sent_kind_within(session: Session, sender_hash: str, kind: str, hours: int) -> bool:
    since = now() - timedelta(hours=hours)
    query = select(OutboxItem.id).where(
        OutboxItem.sender_hash == sender_hash, OutboxItem.kind == kind, OutboxItem.created_at >= since
    )
    return session.exec(query.limit(1)).first() is not None


def compose(
    rendered: RenderedEmail,
    *,
    from_name: str,
    from_address: str,
    recipient: str,
    message_id: str,
    answering: ParsedMail | None,
) -> bytes:
    """The email's bytes: text and HTML alternatives, quoted-printable UTF-8.

    Written out the way the email package writes a MIMEMultipart of two MIMENonMultipart
    parts, byte for byte (a test compares them): each header folded by the package's own
    policy, the parts encoded by binascii, the frame around them as its generator puts it.
    A tenth of the cost of building the message and flattening it, which counted when a
    backlog of replies goes out. `_header` refuses a line break (no header can smuggle in
    another)."""
    # Our own boundary: "=_" never occurs in quoted-printable text.
    boundary = f"=_{secrets.token_hex(12)}"
    headers = [
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
        ("MIME-Version", "1.0"),
        ("From", formataddr((from_name, from_address), charset="utf-8")),
        ("To", _header(recipient)),
        ("Subject", _header(rendered.subject)),
        ("Date", format_datetime(datetime.now(UTC))),
        ("Message-ID", _header(message_id)),
        ("Auto-Submitted", "auto-replied"),
        ("X-Auto-Response-Suppress", "All"),
    ]
    if answering and MSGID_RE.fullmatch(answering.message_id):
        chain = [*answering.references[-MAX_REFERENCES:], answering.message_id]
        headers += [
            ("In-Reply-To", _header(answering.message_id)),
            ("References", _header(" ".join(dict.fromkeys(chain)))),
        ]
    frame = f"--{boundary}\n".encode("ascii")
    parts = [_part(subtype, body) for subtype, body in (("plain", rendered.text), ("html", rendered.html))]
    return b"".join(
        [*(_POLICY.fold_binary(name, value) for name, value in headers), b"\n", frame, (b"\n" + frame).join(parts),
         b"\n", frame.rstrip(b"\n"), b"--\n"]
    )  # fmt: skip


_PART = 'MIME-Version: 1.0\nContent-Type: text/{}; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable\n\n'
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # as the email package's generator finds them


def _part(subtype: str, body: str) -> bytes:
    """One alternative: its headers, and its text quoted-printable (binascii's, in C: the
    standard encoding, readable in any client's source view, 7-bit safe for any server),
    with its line breaks written as the generator writes them."""
    encoded = binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii")
    return (_PART.format(subtype) + "\n".join(_LINE_BREAK.split(encoded))).encode("ascii")


def _header(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"a header value may not contain a line break: {value!r}")
    return value if value.isascii() else Header(value, "utf-8").encode()


def queue_email(
    session: Session,
    *,
    kind: str,
    rendered: RenderedEmail,
    from_name: str,
    from_address: str,
    recipient: str,
    sender_hash: str,
    inbound_id: int | None,
    answering: ParsedMail | None,
) -> int:
    """Write the email's row, its bytes final; returns its id."""
    domain = from_address.rsplit("@", 1)[-1]
    # Short enough never to be folded onto a second header line.
    message_id = f"<{kind}.{secrets.token_hex(10)}@{domain}>"
    raw = compose(
        rendered,
        from_name=from_name,
        from_address=from_address,
        recipient=recipient,
        message_id=message_id,
        answering=answering,
    )
    item_id = add_row(session, OutboxItem, inbound_id=inbound_id, kind=kind, sender_hash=sender_hash,
                      recipient=recipient, message_id=message_id, raw=raw)  # fmt: skip
    if (counted := facts_for(session).replies_since) is not None and sender_hash:
        counted[sender_hash] = counted.get(sender_hash, 0) + 1  # the batch's count, as replies_today reads it
    logger.debug("outbox: queued %s for message %s", kind, inbound_id)  # the decision itself is logged
    return item_id


def send_email(
    session: Session,
    app: App,
    *,
    kind: str,
    recipient: str,
    extra: Mapping[str, object],
    sender_hash: str = "",
    inbound_id: int | None = None,
    answering: ParsedMail | None = None,
) -> str:
    """Render and queue one email from the interview address; return '' or why it was not queued.

    Every email to a person counts against their daily limit, which bounds any mail loop
    (an autoresponder that answers everything, a forged sender) to a few messages a day.
    """
    if not is_replyable_address(recipient):
        return "unreplyable-address"
    if sender_hash and replies_today(session, sender_hash) >= app.settings.core.max_replies_per_day:
        return "reply-limit"
    queue_email(
        session,
        kind=kind,
        rendered=app.renderer.email(kind, **app.email_context(), **extra),
        from_name=app.settings.core.from_name,
        from_address=app.settings.core.from_address,
        recipient=recipient,
        sender_hash=sender_hash,
        inbound_id=inbound_id,
        answering=answering,
    )
    return ""


def tell_author(session: Session, app: App, interview: Interview, kind: str, page_url: str) -> str:
    """Write to an interview's author, whose address is read from their own message: it is
    kept only for the retention period, after which there is nobody to tell (returns why)."""
    inbound = session.get(InboundMessage, interview.inbound_id)
    if inbound is None or not inbound.raw:
        return "address-no-longer-kept"
    mail = parse_message(inbound.raw)
    return send_email(
        session, app, kind=kind, recipient=mail.from_address,
        extra={"number": interview.number, "page_url": page_url},
        sender_hash=interview.sender_hash, inbound_id=inbound.id, answering=mail,
    )  # fmt: skip


def reply_to(
    session: Session, app: App, inbound: InboundMessage, mail: ParsedMail, kind: str, extra: Mapping[str, object]
) -> str:
    """Queue a reply to the sender of `mail`, threaded under it; '' or why it was not queued."""
    return send_email(
        session, app, kind=kind, recipient=mail.from_address, extra=extra,
        sender_hash=inbound.sender_hash, inbound_id=inbound.id, answering=mail,
    )  # fmt: skip
