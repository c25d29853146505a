"""Telling a job-seeker who opted in ("notify me") about new interviews that cross over with
theirs: at most once a week, only about pages that are up, and never after "stop"."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import select

from mailflow.app import App
from mailflow.db import transaction
from mailflow.interviews import Related, related_for_email
from mailflow.models import Interview, Publication, Subscription
from mailflow.replies import send_email
from mailflow.states import PublicationState, now

INTERVAL = timedelta(days=7)


def send_crossover_notices(app: App) -> int:
    """Queue the notices that are due; returns how many."""
    sent = 0
    with transaction(app.engine) as session:
        due = session.exec(select(Subscription).where(Subscription.pending_json != "[]")).all()
        for subscription in due:
            if subscription.last_notified_at and subscription.last_notified_at > now() - INTERVAL:
                continue
            pending: list[int] = json.loads(subscription.pending_json)
            live = session.exec(
                select(Interview, Publication)
                .join(Publication)
                .where(Interview.number.in_(pending), Publication.state == PublicationState.PUBLISHED)  # type: ignore[attr-defined]
                .order_by(Interview.number)  # type: ignore[arg-type]
            ).all()
            if not live:
                continue
            interview = session.get(Interview, subscription.interview_id)
            assert interview is not None
            related = [Related(other.number, other.answers_json, page.url, page.state) for other, page in live]
            blocked = send_email(
                session, app, kind="crossover_notice", recipient=subscription.address,
                extra={"number": interview.number, "related": related_for_email(app, related)},
                sender_hash=interview.sender_hash,
            )  # fmt: skip
            if not blocked:
                told = {other.number for other, _ in live}
                subscription.pending_json = json.dumps([n for n in pending if n not in told])
                subscription.last_notified_at = now()
                sent += 1
    return sent
