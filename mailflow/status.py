"""`mailflow status`: the host's one-screen view of where everything stands."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import func, select

from mailflow.app import App
from mailflow.db import transaction
from mailflow.digest import next_digest_at
from mailflow.models import InboundMessage, OutboxItem, Publication
from mailflow.numbering import current_count
from mailflow.states import InboundState, OutboxState, PublicationState
from mailflow.worker import last_pass

RECENT_FAILURES = 5


def collect_status(app: App) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with transaction(app.engine) as session:
        report["interviews"] = current_count(session)
        for label, model in (("messages", InboundMessage), ("outgoing", OutboxItem), ("publications", Publication)):
            rows = session.exec(select(model.state, func.count()).group_by(model.state)).all()  # type: ignore[attr-defined]
            report[label] = dict(sorted((state, count) for state, count in rows))
        report["failures"] = (
            [
                f"message {row.id}: {row.reason}"
                for row in session.exec(
                    select(InboundMessage)
                    .where(InboundMessage.state == InboundState.FAILED)
                    .order_by(InboundMessage.id.desc())  # type: ignore[union-attr]
                    .limit(RECENT_FAILURES)
                )
            ]
            + [
                f"email {row.id} ({row.kind}): {row.last_error}"
                for row in session.exec(
                    select(OutboxItem).where(OutboxItem.state == OutboxState.FAILED).limit(RECENT_FAILURES)
                )
            ]
            + [
                f"publication {row.id}: {row.last_error}"
                for row in session.exec(
                    select(Publication).where(Publication.state == PublicationState.FAILED).limit(RECENT_FAILURES)
                )
            ]
        )
    report["waiting"] = {
        "messages to read": report["messages"].get(InboundState.RECEIVED.value, 0),
        "numbered replies to answer": report["messages"].get(InboundState.NUMBER_ASSIGNED.value, 0),
        "emails to send": report["outgoing"].get(OutboxState.QUEUED.value, 0),
        "pages to publish": report["publications"].get(PublicationState.QUEUED.value, 0),
        "interviews awaiting your review": report["publications"].get(PublicationState.AWAITING_REVIEW.value, 0),
    }
    report["last_pass"] = last_pass(app)
    upcoming = next_digest_at(app, datetime.now().astimezone())
    report["next_digest"] = upcoming.strftime("%Y-%m-%d %H:%M") if upcoming else "off"
    return report


def format_status(report: dict[str, Any]) -> str:
    lines = [f"Interviews so far: {report['interviews']:05d}"]
    for label in ("messages", "outgoing", "publications"):
        counts = ", ".join(f"{count} {state}" for state, count in report[label].items()) or "none"
        lines.append(f"{label.capitalize()}: {counts}")
    waiting = ", ".join(f"{count} {what}" for what, count in report["waiting"].items() if count) or "nothing"
    lines.append(f"Waiting: {waiting}")
    last = report["last_pass"]
    lines.append(
        f"Last pass: {last['finished_at'][:19].replace('T', ' ')} UTC ({last['summary']})"
        if last
        else "Last pass: never"
    )
    lines.append(f"Next digest: {report['next_digest']}")
    if report["failures"]:
        lines.append("Failures (run `mailflow doctor` for settings problems):")
        lines.extend(f"  {failure}" for failure in report["failures"])
    return "\n".join(lines)
