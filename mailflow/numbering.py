"""Gapless interview numbers: allocated under a row lock, in the transaction that records
the interview, so a rollback gives the number back and two workers never share one."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlmodel import Session, select

from mailflow.db import insert_new
from mailflow.models import Counter

INTERVIEW_COUNTER = "interview"


def allocate_number(session: Session) -> int:
    """The next number (1, 2, ...). Must run inside the transaction that uses it. The row is
    locked and read once per batch of decisions; after a message undone in its savepoint it
    is locked and read again (PostgreSQL lets go of a lock taken in an undone savepoint), so
    that message's number is given back and the next one is still taken under the lock."""
    transaction = session.get_transaction()
    kept = session.info.get(INTERVIEW_COUNTER)
    counter = kept[1] if kept and kept[0] is transaction and not inspect(kept[1]).expired_attributes else None
    if counter is None:
        locked = select(Counter).where(Counter.name == INTERVIEW_COUNTER).with_for_update()
        counter = session.exec(locked).first()
        if counter is None:
            # The first number ever: two workers may both find no counter row; only one insert counts.
            insert_new(session, Counter, [{"name": INTERVIEW_COUNTER, "value": 0}], key="name")
            counter = session.exec(locked).one()
        session.info[INTERVIEW_COUNTER] = (transaction, counter)
    counter.value += 1
    return int(counter.value)


def current_count(session: Session) -> int:
    counter = session.get(Counter, INTERVIEW_COUNTER)
    return counter.value if counter else 0
