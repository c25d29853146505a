"""Gapless interview numbers: allocated under a row lock, in the transaction that records
the interview, so a rollback gives the number back and two workers never share one."""

from __future__ import annotations

from sqlmodel import Session, select

from mailflow.models import Counter

INTERVIEW_COUNTER = "interview"


def allocate_number(session: Session) -> int:
    """The next number (1, 2, ...). Must run inside the transaction that uses it."""
    counter = session.exec(select(Counter).where(Counter.name == INTERVIEW_COUNTER).with_for_update()).first()
    if counter is None:
        counter = Counter(name=INTERVIEW_COUNTER, value=0)
        session.add(counter)
    counter.value += 1
    session.flush()
    return counter.value


def current_count(session: Session) -> int:
    counter = session.get(Counter, INTERVIEW_COUNTER)
    return counter.value if counter else 0
