"""The interview itself: a reply with answers gets a number (or a request for the rest);
a reply to the number confirmation with changed answers edits the same interview."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import bindparam, delete
from sqlmodel import Session, select

from mailflow.answers import Answers, extract_answers
from mailflow.app import App
from mailflow.batch_facts import facts_for
from mailflow.crossovers import VISIBLE, host_links, interview_text, refresh_related
from mailflow.db import add_row, insert_new
from mailflow.models import (
    CrossLink,
    Draft,
    InboundMessage,
    Interview,
    OutboxItem,
    PendingLinks,
    Publication,
    Subscription,
)
from mailflow.numbering import allocate_number
from mailflow.pages import answers_to_json, excerpt_of
from mailflow.parsing import ParsedMail
from mailflow.render import format_number
from mailflow.replies import last_sent_kind_within, reply_to
from mailflow.scrub import scrub_answers
from mailflow.states import Decision, InboundState, PublicationState, join_reasons, now, transition


def handle_interview(
    session: Session, app: App, inbound: InboundMessage, mail: ParsedMail, scrubbed: dict[int, str]
) -> Decision:
    """`scrubbed`: the answers found in the reply, as they may be published (scrub.scrub_answers)."""
    limit, found = app.settings.core.max_answer_chars, scrubbed
    draft = _draft_of(session, inbound.sender_hash)
    if found and draft is not None:
        found = {**{int(n): a for n, a in json.loads(draft.answers_json).items()}, **found}
    if len(found) >= app.min_answers:
        if draft is not None:
            session.delete(draft)
        answers_json = answers_to_json(app.questions, found)
        earlier = _same_interview(session, inbound.sender_hash, answers_json)
        if earlier is not None:
            # Sent again ("I never got a reply"): the same number again, not a second interview.
            context = {"number": earlier, "page_url": app.publisher.permalink(earlier), "related": [],
                       "shortened": [], "limit": limit}  # fmt: skip
            blocked = reply_to(session, app, inbound, mail, "numbered", context)
            return InboundState.ACTED_ON, join_reasons(f"resubmitted-{earlier:05d}", blocked)
        return _assign_number(session, inbound, answers_json)
    if found:
        return _ask_for_missing(session, app, inbound, mail, found, draft)
    if owns_an_interview(session, inbound.sender_hash):
        # "Thank you!" after their number: a message for the host, not a request for the questions.
        return InboundState.FOR_HOST, "message-from-an-interviewee"
    interval = app.settings.core.questionnaire_interval_hours
    if last_sent_kind_within(session, inbound.sender_hash, "questionnaire", interval):
        return InboundState.FOR_HOST, "questionnaire-sent-recently"
    blocked = reply_to(session, app, inbound, mail, "questionnaire", {})
    if blocked:
        return InboundState.FOR_HOST, blocked
    return InboundState.QUESTIONNAIRE_SENT, "no-answers"


_HAS_DRAFT = select(Draft.sender_hash).where(Draft.sender_hash == bindparam("sender_hash"))


def _draft_of(session: Session, sender_hash: str) -> Draft | None:
    """The sender's draft, if any. Almost every reply comes without one: asked first without
    the ORM, whose lookup of a row that is not there costs several times more."""
    if (drafts := facts_for(session).drafts) is not None:
        found = sender_hash in drafts
    else:
        found = session.connection().execute(_HAS_DRAFT, {"sender_hash": sender_hash}).first() is not None
    return session.get(Draft, sender_hash) if found else None


def _assign_number(session: Session, inbound: InboundMessage, answers_json: str) -> Decision:
    """Give a complete reply its number: taken in turn (worker.decide_batch), so the numbers
    follow arrival. Its page, cross-overs and reply follow in `answer_numbered`, outside
    that turn: other workers number the next replies meanwhile."""
    number = allocate_number(session)
    add_row(session, Interview, number=number, inbound_id=inbound.id or 0, sender_hash=inbound.sender_hash,
            answers_json=answers_json, submitted_on=inbound.arrived_at.date())  # fmt: skip
    return InboundState.NUMBER_ASSIGNED, f"interview-{number:05d}"


def answer_numbered(
    session: Session,
    app: App,
    inbound: InboundMessage,
    interview: Interview,
    mail: ParsedMail,
    answers: Answers,
    older: OlderPages,
) -> Decision:
    """The rest of a numbered reply: its page queued, its cross-overs linked, the number sent
    to its author. `answers`: those found in the reply itself (some may have been cut);
    `older`: the older pages to refresh at the end of the batch."""
    limit = app.settings.core.max_answer_chars
    shortened = sorted(n for n, text in answers.found.items() if len(text) > limit)
    first_state = PublicationState.AWAITING_REVIEW if app.settings.core.review else PublicationState.QUEUED
    permalink = app.publisher.permalink(interview.number)
    add_row(session, Publication, interview_id=interview.id or 0, url=permalink, state=first_state)
    older.answered[interview.number] = Related(interview.number, interview.answers_json, permalink, first_state)
    # With review on, an interview joins the cross-overs only once the host approves it.
    # The host can link only interviews that have a page: this one has no links of theirs yet.
    related = [] if app.settings.core.review else link_crossovers(session, app, interview, [], older)
    context = {
        "number": interview.number,
        "page_url": permalink,
        "related": related_for_email(app, related),
        "shortened": shortened,
        "limit": limit,
    }
    blocked = reply_to(session, app, inbound, mail, "numbered", context)
    interview.updated_at = now()  # the digest lists it from now: it has its page
    notes = (f"interview-{interview.number:05d}", "answers-shortened" if shortened else "", blocked)
    return InboundState.NUMBERED, join_reasons(*notes)


class Related(NamedTuple):
    """What a reply (or a note) says about a related interview."""

    number: int
    answers_json: str
    url: str
    state: str


_RELATED = (
    select(Interview.number, Interview.answers_json, Publication.url, Publication.state)
    .join(Publication, Publication.interview_id == Interview.id)  # type: ignore[arg-type]
    .where(Interview.number.in_(bindparam("numbers", expanding=True)))  # type: ignore[attr-defined]
)


def read_related(session: Session, numbers: Sequence[int]) -> dict[int, Related]:
    """What a reply says about these interviews, by number, read as plain rows (this runs
    for every numbered reply or batch of them)."""
    if not numbers:
        return {}
    return {row[0]: Related(*row) for row in session.connection().execute(_RELATED, {"numbers": list(numbers)})}


# Pages that are down, or going: taken down between a new interview's reply and the pass's
# end, such a page is not relinked (its links would come back with the host's own).
TAKEN_DOWN = (PublicationState.WITHDRAWAL_QUEUED, PublicationState.WITHDRAWN, PublicationState.REJECTED)


@dataclass
class OlderPages:
    """Older interviews whose related links may change as new interviews join the cross-overs.
    A pass refreshes each of them once, at its end (`keep_for_the_pass`, `relink`),
    rather than once for every new interview related to it."""

    newer: dict[int, set[int]] = field(default_factory=dict)  # older number -> new numbers related to it
    answered: dict[int, Related] = field(default_factory=dict)  # the batch's own new pages, by number
    prepared: dict[int, list[int]] = field(default_factory=dict)  # new number -> its closest (`prepare`)
    stored: dict[int, Related] = field(default_factory=dict)  # what those point to, from before the batch

    def prepare(self, session: Session, app: App, batch: Sequence[Interview]) -> None:
        """Find the cross-overs of a batch of new interviews at once, for `link_crossovers`:
        all join the index, one product finds each one's closest among the older ones and
        those of the batch answered before it (related_many), and one query reads the older
        interviews they point to. Those the batch does not answer after all leave the index
        again (`unprepare`). `batch`: in the order they are answered."""
        if not batch:
            return
        index = app.crossovers(session)
        items = [(interview.number, interview_text(interview.answers_json)) for interview in batch]
        for number, text in items:
            index.add(number, text)
        closest = index.related_many(items, one_after_another=True)
        self.prepared = {number: found for (number, _), found in zip(items, closest, strict=True)}
        wanted = sorted({number for found in closest for number in found} - self.prepared.keys())
        self.stored = read_related(session, wanted)

    def unprepare(self, session: Session, app: App) -> None:
        """The prepared interviews not answered in this batch: out of the index until they are."""
        if not self.prepared:
            return
        app.crossovers(session).remove(*self.prepared)
        self.prepared = {}

    def drop(self, number: int) -> None:
        """The new interview `number` was not answered after all (its message failed)."""
        self.answered.pop(number, None)
        for numbers in self.newer.values():
            numbers.discard(number)

    def keep_for_the_pass(self, session: Session) -> None:
        """The batch's new interviews, kept for the pass's end (`relink`), when their
        older pages are refreshed once: in a backlog the same older pages are related to
        batch after batch. Kept as rows, in the batch's transaction: should the pass stop
        first, the next one refreshes them."""
        numbers = sorted({number for numbers in self.newer.values() for number in numbers})
        insert_new(session, PendingLinks, [{"number": number} for number in numbers], key="number")
        self.newer = {}

    def refresh(self, session: Session, app: App) -> None:
        """Their related links, afresh; pages whose links changed go up again, and people who
        asked to hear about cross-overs with theirs are told (at most weekly).

        With the turn on the cross-overs shared: two workers relink side by side, each on the
        rows it locks here, in order of number (they wait for each other's rows, never in a
        circle), reading the host's links and the index only once the rows are locked, so
        what another wrote before letting go is what is read. A transaction holding the
        whole turn (answering, the host's commands) runs beside none of them."""
        if not self.newer:
            return
        app.take_crossover_turn(session, shared=True)  # before any row: a holder of the whole turn locks rows too
        rows = session.exec(
            select(Interview, Publication)
            .join(Publication, Publication.interview_id == Interview.id)  # type: ignore[arg-type]
            .where(
                Interview.number.in_(self.newer),  # type: ignore[attr-defined]
                Publication.state.not_in(TAKEN_DOWN),  # type: ignore[attr-defined]
            )
            .order_by(Interview.number)  # type: ignore[arg-type]
            .with_for_update(key_share=True)  # FOR NO KEY UPDATE: a comment on one may still be stored
        ).all()
        their_links = host_links(session, self.newer)
        index = app.crossovers(session)  # the turn is this transaction's already: only catches up
        closest = index.related_many([(other.number, interview_text(other.answers_json)) for other, _ in rows])
        for (other, publication), automatic in zip(rows, closest, strict=True):
            if refresh_related(session, index, other, their_links.get(other.number, []), automatic):
                requeue(publication)
        told = {other.id: self.newer[other.number] for other, _ in rows if self.newer[other.number]}
        subscriptions = session.exec(
            select(Subscription)
            .where(Subscription.interview_id.in_(told))  # type: ignore[attr-defined]
            .order_by(Subscription.id)  # type: ignore[arg-type]
            .with_for_update()
        ).all()
        for subscription in subscriptions:
            pending = {*json.loads(subscription.pending_json), *told[subscription.interview_id]}
            subscription.pending_json = json.dumps(sorted(pending))
        self.newer = {}


_PENDING_RELATED = select(Interview.number, Interview.related_json).where(
    Interview.number.in_(bindparam("numbers", expanding=True))  # type: ignore[attr-defined]
)


def pending_links(session: Session, limit: int, stuck: Collection[int] = ()) -> list[int]:
    """Up to `limit` of the new interviews kept by `OlderPages.keep_for_the_pass`, oldest
    first, but for those `stuck` this pass; locked for this transaction (another worker
    skips them)."""
    return list(
        session.exec(
            select(PendingLinks.number)
            .where(PendingLinks.number.not_in(stuck))  # type: ignore[attr-defined]
            .order_by(PendingLinks.number)  # type: ignore[arg-type]
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )


def relink(session: Session, app: App, numbers: Sequence[int]) -> None:
    """Refresh the older pages related to these new interviews, each older page once, and
    let the new interviews go from the pending ones."""
    older = OlderPages()
    for number, related_json in session.connection().execute(_PENDING_RELATED, {"numbers": list(numbers)}):
        for other in json.loads(related_json):
            older.newer.setdefault(other, set()).add(number)
    older.refresh(session, app)
    session.connection().execute(delete(PendingLinks).where(PendingLinks.number.in_(numbers)))  # type: ignore[attr-defined]


def link_crossovers(
    session: Session,
    app: App,
    interview: Interview,
    links: list[CrossLink] | None = None,
    older: OlderPages | None = None,
) -> list[Related]:
    """Find the interview's cross-overs; returns the related interviews, closest first.
    `links`: the host's links from it, when known (none for an interview numbered just now).
    The older pages whose links this may change are refreshed now, or at the pass's end
    when a batch passes `older` (OlderPages.keep_for_the_pass). The related interviews are
    read as plain rows: this runs for every numbered reply."""
    pages = older if older is not None else OlderPages()
    index = app.crossovers(session)
    automatic = pages.prepared.pop(interview.number, None)
    if automatic is None:
        index.add(interview.number, interview_text(interview.answers_json))
    refresh_related(session, index, interview, links, automatic)
    related: list[int] = json.loads(interview.related_json)
    if not related:
        return []
    # The batch's own new pages may not be written yet (a batch is flushed as one): known here,
    # as are the older ones a prepared batch read.
    known = {**pages.stored, **pages.answered}
    found = {number: known[number] for number in related if number in known}
    if len(found) < len(related):
        found.update(read_related(session, [number for number in related if number not in found]))
    for number in found:
        pages.newer.setdefault(number, set()).add(interview.number)
    if older is None:
        pages.refresh(session, app)
    return [found[number] for number in related if number in found]


def related_for_email(app: App, related: Sequence[Related]) -> list[dict[str, str]]:
    """The related interviews a reply may point to: only those that are (or are about to be) public."""
    return [
        {
            "number": format_number(other.number),
            "url": other.url or app.publisher.permalink(other.number) or app.site.base_url,
            "excerpt": excerpt_of(other.answers_json),
        }
        for other in related
        if other.state in VISIBLE
    ]


def requeue_publications(session: Session, interview_ids: list[int]) -> None:
    """Ask for these pages to be published again (an edit, new links, a comment)."""
    if interview_ids:
        for publication in session.exec(select(Publication).where(Publication.interview_id.in_(interview_ids))).all():  # type: ignore[attr-defined]
            requeue(publication)


def requeue(publication: Publication) -> None:
    """One page to publish again. One still waiting to go up is touched instead: other
    workers' cross-over indexes notice the change (crossovers.CrossoverIndex.catch_up)."""
    if publication.state in (PublicationState.PUBLISHED, PublicationState.FAILED):
        transition(publication, PublicationState.QUEUED, reason="update")
    else:
        publication.updated_at = now()


def _ask_for_missing(
    session: Session, app: App, inbound: InboundMessage, mail: ParsedMail, found: dict[int, str], draft: Draft | None
) -> Decision:
    payload = json.dumps({str(n): a for n, a in found.items()}, ensure_ascii=False)
    if draft is None:
        session.add(Draft(sender_hash=inbound.sender_hash, answers_json=payload))
    else:
        draft.answers_json = payload
    missing = [(n, q) for n, q in enumerate(app.questions, start=1) if n not in found]
    blocked = reply_to(session, app, inbound, mail, "incomplete", {"missing": missing, "answered": len(found)})
    return InboundState.INCOMPLETE, join_reasons("below-threshold", blocked)


def handle_edit(session: Session, app: App, inbound: InboundMessage, mail: ParsedMail) -> Decision | None:
    """A reply to our number confirmation, from the same sender, with answers: update that interview."""
    interview = interview_confirmed_in(session, mail, inbound.sender_hash)
    if interview is None:
        return None
    answers = extract_answers(mail, app.questions, app.boilerplate, trust_numbers=True)
    # "1) When will it be online?" is a question to us, not a new answer.
    changed = {n: text for n, text in answers.found.items() if not text.rstrip().endswith("?")}
    if not changed:
        return None  # not an edit after all: let the other handlers look at it
    current = {item["question"]: item["answer"] for item in json.loads(interview.answers_json)}
    limit = app.settings.core.max_answer_chars
    for number, text in scrub_answers(changed, limit, mail.from_name, mail.from_address).items():
        current[app.questions[number - 1]] = text
    ordered = [q for q in app.questions if q in current] + [q for q in current if q not in app.questions]
    interview.answers_json = json.dumps([{"question": q, "answer": current[q]} for q in ordered], ensure_ascii=False)
    app.crossovers(session).add(interview.number, interview_text(interview.answers_json))
    refresh_related(session, app.crossovers(session), interview)
    requeue_publications(session, [interview.id or 0])
    blocked = reply_to(session, app, inbound, mail, "edited", {"number": interview.number,
                                                             "page_url": app.publisher.permalink(interview.number),
                                                             "changed": sorted(changed)})  # fmt: skip
    return InboundState.ACTED_ON, join_reasons(f"edited-{interview.number:05d}", blocked)


_SAME_ANSWERS = (
    select(Interview.number)
    .where(Interview.sender_hash == bindparam("sender_hash"), Interview.answers_json == bindparam("answers_json"))
    .limit(1)
)


def _same_interview(session: Session, sender_hash: str, answers_json: str) -> int | None:
    """The number of this sender's interview with exactly these answers, if any (run without
    the ORM, as every complete reply asks)."""
    if not sender_hash:
        return None
    if (interviews := facts_for(session).interviews) is not None:
        return interviews.get(sender_hash, {}).get(answers_json)
    found = session.connection().execute(_SAME_ANSWERS, {"sender_hash": sender_hash, "answers_json": answers_json})
    return found.scalar()


def owns_an_interview(session: Session, sender_hash: str) -> bool:
    if not sender_hash:
        return False
    return session.exec(select(Interview.id).where(Interview.sender_hash == sender_hash).limit(1)).first() is not None


_CONFIRMED_IN = (
    select(Interview.id)
    .join(OutboxItem, OutboxItem.inbound_id == Interview.inbound_id)  # type: ignore[arg-type]
    .where(
        OutboxItem.message_id.in_(bindparam("referenced", expanding=True)),  # type: ignore[attr-defined]
        OutboxItem.kind == "numbered",
        Interview.sender_hash == bindparam("sender_hash"),
    )
    .limit(1)
)


def interview_confirmed_in(session: Session, mail: ParsedMail, sender_hash: str) -> Interview | None:
    """The sender's own interview whose number confirmation this message replies to, if any.
    Asked of every reply that quotes anything: looked up without the ORM, loaded if found."""
    referenced = [*mail.in_reply_to, *mail.references]
    if not referenced or not sender_hash:
        return None
    if (confirmed := facts_for(session).confirmations) is not None:
        confirmations = confirmed.get(sender_hash, {})
        interview_id = next((confirmations[r] for r in referenced if r in confirmations), None)
    else:
        found = session.connection().execute(_CONFIRMED_IN, {"referenced": referenced, "sender_hash": sender_hash})
        interview_id = found.scalar()
    return session.get(Interview, interview_id) if interview_id is not None else None
