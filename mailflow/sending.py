"""The send step: queued emails are handed to the outbox, each exactly as it was rendered."""

from __future__ import annotations

import logging
from collections.abc import Callable

from mailflow.app import App
from mailflow.db import claim, transaction
from mailflow.models import OutboxItem
from mailflow.outbox import OutgoingMail
from mailflow.retries import Failure, attempt, due_ids, record_failure
from mailflow.states import OutboxState, transition

logger = logging.getLogger(__name__)


def send_all(app: App, should_stop: Callable[[], bool] = lambda: False) -> tuple[int, int]:
    """Send every due email over one outbox connection; returns (sent, not sent)."""
    sent = failed = 0
    try:
        for item_id in due_ids(app, OutboxItem, OutboxState.QUEUED):
            if should_stop():
                break
            outcome = send_one(app, item_id)
            if outcome is True:
                sent += 1
            elif outcome is False:
                failed += 1
    finally:
        app.outbox.close()
    return sent, failed


def send_one(app: App, item_id: int) -> bool | None:
    """Send one queued email; on failure record the error and when to try again. None when
    another worker has it (or it is already sent): not ours to count.

    The row stays locked while it is handed over, so two workers never send it twice; a
    crash before it is marked sent leaves it queued, and it goes again with the same bytes.
    """
    with transaction(app.engine) as session:
        item = claim(session, OutboxItem, item_id, OutboxItem.state == OutboxState.QUEUED)
        if item is None:
            return None
        mail = OutgoingMail(item.id or 0, item.message_id, app.settings.core.from_address, (item.recipient,), item.raw)
        outcome = attempt(lambda: app.outbox.send(mail), f"outbox {item_id}")
        if not isinstance(outcome, Failure):
            transition(item, OutboxState.SENT)
            return True
        record_failure(item, outcome)
        logger.warning("outbox %s: not sent (%s)", item_id, item.last_error)
    return False
