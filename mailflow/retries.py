"""Bounded retries for outgoing effects (emails, pages): what is due, one attempt, the record.

Expected refusals (DeliveryError, PublishError) carry whether retrying can help; anything
else is caught here, once per attempt, logged with its traceback and retried like a
temporary failure. After MAX_ATTEMPTS a row is `failed` with its last error, for the host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from sqlmodel import select

from mailflow.app import App
from mailflow.db import transaction
from mailflow.errors import DeliveryError, PublishError
from mailflow.models import OutboxItem, Publication
from mailflow.scrub import redact_addresses
from mailflow.states import OutboxState, PublicationState, now, transition

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
T = TypeVar("T")


@dataclass(frozen=True)
class Failure:
    error: str
    permanent: bool = False
    retry_after: float | None = None  # seconds the server asked us to wait


def backoff(attempts: int) -> timedelta:
    """1, 2, 4 ... minutes, capped at six hours."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 360))


def due_ids(app: App, model: type[OutboxItem] | type[Publication], state: str) -> list[int]:
    """The rows in `state` whose next attempt is due, oldest first."""
    with transaction(app.engine) as session:
        query = (
            select(model.id)
            .where(model.state == state, model.next_attempt_at <= now())  # type: ignore[arg-type]
            .order_by(model.id)  # type: ignore[arg-type]
        )
        return [row_id for row_id in session.exec(query).all() if row_id is not None]


def attempt(action: Callable[[], T], what: str) -> T | Failure:
    """Run one attempt; a refusal or any unexpected error comes back as a Failure."""
    try:
        return action()
    except (DeliveryError, PublishError) as exc:
        return Failure(str(exc), exc.permanent, exc.retry_after)
    except Exception as exc:
        logger.exception("%s: unexpected error", what)
        return Failure(f"{type(exc).__name__}: {exc}")


def record_failure(row: OutboxItem | Publication, failure: Failure) -> None:
    """Count the attempt; fail for good when permanent or out of attempts, else schedule the next."""
    row.attempts += 1
    failure = Failure(redact_addresses(failure.error), failure.permanent, failure.retry_after)
    row.last_error = failure.error
    if failure.permanent or row.attempts >= MAX_ATTEMPTS:
        failed = OutboxState.FAILED if isinstance(row, OutboxItem) else PublicationState.FAILED
        transition(row, failed, reason=failure.error)
        return
    wait = backoff(row.attempts)
    if failure.retry_after:
        wait = max(wait, timedelta(seconds=failure.retry_after))
    row.next_attempt_at = now() + wait
    row.updated_at = now()
