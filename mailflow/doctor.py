"""`mailflow doctor`: try each configured backend the way a pass would, and say plainly what to fix.

A check is a function (Settings, DoctorOptions) -> list[Finding], listed in CHECKS; add
one for a new backend or role (the blog check plugs in the same way). A backend that
can test itself offers `check() -> list[str]` (what it verified) and raises a
MailflowError whose text names the setting to change. Nothing is sent unless asked.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from mailflow.config import Settings
from mailflow.errors import MailflowError
from mailflow.outbox import OutgoingMail, make_outbox
from mailflow.sources import make_source


@dataclass(frozen=True)
class Finding:
    area: str  # the settings section it is about: incoming, outgoing, blog ...
    ok: bool
    text: str


@dataclass(frozen=True)
class DoctorOptions:
    send_test: str | None = None  # an address to send one test email to


Check = Callable[[Settings, DoctorOptions], list[Finding]]


def check_incoming(settings: Settings, options: DoctorOptions) -> list[Finding]:
    backend = settings.incoming.text("backend", "maildir")
    return _probe("incoming", backend, lambda: make_source(settings.incoming))


def check_outgoing(settings: Settings, options: DoctorOptions) -> list[Finding]:
    backend = settings.outgoing.text("backend", "maildir")
    findings = _probe("outgoing", backend, lambda: make_outbox(settings.outgoing, settings.incoming))
    if options.send_test and all(finding.ok for finding in findings):
        findings.append(_send_test(settings, options.send_test))
    return findings


def check_blog(settings: Settings, options: DoctorOptions) -> list[Finding]:
    from mailflow.pages import SiteInfo
    from mailflow.publishers import PublisherEnv, make_publisher
    from mailflow.render import Renderer, default_templates_dir

    site = SiteInfo(settings.core.site_name, settings.blog.text("base_url", "http://localhost:8000/"),
                    settings.blog.text("language", "en"), settings.core.from_address)  # fmt: skip
    env = PublisherEnv(Renderer(default_templates_dir()), site)
    return _probe("blog", settings.blog.text("backend", "static"), lambda: make_publisher(settings.blog, env))


CHECKS: list[Check] = [check_incoming, check_outgoing, check_blog]


def run_checks(settings: Settings, options: DoctorOptions, checks: list[Check] | None = None) -> list[Finding]:
    """Run every check; one failing check never hides the others."""
    findings: list[Finding] = []
    for check in checks if checks is not None else CHECKS:
        try:
            findings.extend(check(settings, options))
        except MailflowError as exc:
            findings.append(Finding(check.__name__.removeprefix("check_"), False, str(exc)))
        except Exception as exc:  # noqa: BLE001 - the doctor's one failure boundary per check: report, carry on
            findings.append(
                Finding(check.__name__.removeprefix("check_"), False, f"unexpected error: {type(exc).__name__}: {exc}")
            )
    return findings


def render_findings(findings: list[Finding]) -> str:
    lines = [f"{'ok' if finding.ok else 'PROBLEM':8} [{finding.area}] {finding.text}" for finding in findings]
    problems = sum(1 for finding in findings if not finding.ok)
    lines.append(
        "All checks passed." if not problems else f"{problems} problem(s) found: change the settings named above."
    )
    return "\n".join(lines)


def _probe(area: str, backend: str, build: Callable[[], object]) -> list[Finding]:
    try:
        instance = build()
    except MailflowError as exc:
        return [Finding(area, False, str(exc))]
    check = getattr(instance, "check", None)
    if check is None:
        return [Finding(area, True, f"backend {backend}: nothing to connect to")]
    try:
        return [Finding(area, True, f"backend {backend}: {line}") for line in check()]
    except MailflowError as exc:
        return [Finding(area, False, str(exc))]
    finally:
        getattr(instance, "close", lambda: None)()


def _send_test(settings: Settings, address: str) -> Finding:
    message = EmailMessage()
    core = settings.core
    message["From"] = formataddr((core.from_name, core.from_address))
    message["To"] = address
    message["Subject"] = f"{core.site_name}: test message from mailflow doctor"
    message["Date"] = format_datetime(datetime.now(UTC))
    message_id = make_msgid(idstring="doctor-" + uuid.uuid4().hex[:8], domain=core.from_address.rsplit("@", 1)[-1])
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("This is a test message sent by `mailflow doctor --send-test`. No reply is needed.\n")
    outbox = make_outbox(settings.outgoing, settings.incoming)
    try:
        outbox.send(OutgoingMail(0, message_id, core.from_address, (address,), message.as_bytes()))
    except MailflowError as exc:
        return Finding("outgoing", False, f"the test message to {address} was not sent: {exc}")
    finally:
        outbox.close()
    return Finding("outgoing", True, f"test message sent to {address} ({message_id})")
