"""The publish step: queued interviews go to the blog, withdrawn ones come down, the listing
(index, feed) is refreshed once per pass when anything changed, and comments follow their
interview onto the blog (or off it)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from mailflow.app import App
from mailflow.db import claim, lease_until, transaction
from mailflow.interviews import requeue_publications
from mailflow.models import Comment, Interview, Publication
from mailflow.numbering import current_count
from mailflow.pages import InterviewPage, comment_view, interview_page, load_pages
from mailflow.publishers import Placement
from mailflow.replies import tell_author
from mailflow.retries import MAX_ATTEMPTS, Failure, attempt, backoff, due_ids, record_failure
from mailflow.states import CommentState, PublicationState, now, transition

logger = logging.getLogger(__name__)

LISTING_SIZE = 50  # the newest interviews an index or feed shows; older ones keep their pages
SHOWN_IN_PAGE = "in-page"  # Comment.remote_id when the page itself shows the comment


def publish_all(
    app: App, should_stop: Callable[[], bool], after_each_batch: Callable[[], None] = lambda: None
) -> tuple[int, int, int]:
    """Take down, then publish, what is due; returns (published, not published, withdrawn).
    `after_each_batch`: the background sender's turn to lease its next emails."""
    withdrawn = sum(
        withdraw_one(app, row_id) for row_id in due_ids(app, Publication, PublicationState.WITHDRAWAL_QUEUED)
    )
    published = failed = 0
    due = due_ids(app, Publication, PublicationState.QUEUED)
    batch = app.publisher.pages_per_batch
    for start in range(0, len(due), batch):
        if should_stop():
            break
        done, not_done = publish_batch(app, due[start : start + batch])
        published, failed = published + done, failed + not_done
        after_each_batch()
    if published or withdrawn or app.listing_stale:
        outcome = attempt(lambda: refresh_listing(app), "listing")
        app.listing_stale = isinstance(outcome, Failure)
        if isinstance(outcome, Failure):
            logger.warning("the index and feed were not refreshed (%s); trying again next pass", outcome.error)
    publish_comments(app, should_stop)
    return published, failed, withdrawn


def publish_batch(app: App, publication_ids: list[int]) -> tuple[int, int]:
    """Publish queued interviews: taken (with a lease) in one transaction, put on the blog one
    by one, their outcomes recorded in one more. Returns (published, not published); a row
    another worker has taken counts as neither."""
    taken_at = now()
    with transaction(app.engine) as session:
        pages = take(app, session, publication_ids)
    outcomes: dict[int, tuple[InterviewPage, str, Placement | Failure]] = {}
    for publication_id, page, remote_id in pages:

        def remember(new_remote_id: str, publication_id: int = publication_id) -> None:
            """Commit the blog's id the moment it exists: a crash before the end of publish
            then resumes with an update of that post, never a second one."""
            with transaction(app.engine) as session:
                row = session.get(Publication, publication_id)
                if row is not None and row.remote_id != new_remote_id:
                    row.remote_id = new_remote_id

        publish = partial(app.publisher.publish, page, remote_id, remember)
        outcomes[publication_id] = (page, remote_id, attempt(publish, f"publication {publication_id}"))
    results = record_outcomes(app, outcomes, taken_at)
    return results.count(True), results.count(False)


def record_outcomes(
    app: App, outcomes: dict[int, tuple[InterviewPage, str, Placement | Failure]], taken_at: datetime
) -> list[bool]:
    """Record each page's outcome, its row locked. Rows another worker holds (a page it is
    relinking as it answers a numbered reply) are recorded after the others, one at a time,
    holding no other lock while waiting: two workers never wait on each other's rows."""
    waiting, results = dict(outcomes), []
    while waiting:
        with transaction(app.engine) as session:
            query = select(Publication).where(Publication.id.in_(waiting))  # type: ignore[union-attr]
            rows = (
                session.exec(query.with_for_update(skip_locked=True)).all()
                or session.exec(
                    query.order_by(Publication.id).limit(1).with_for_update()  # type: ignore[arg-type]
                ).all()
            )
            if not rows:
                break  # gone meanwhile (forgotten): nothing left to record
            for publication in rows:
                outcome = waiting.pop(publication.id or 0)
                results.append(record_publication(app, session, publication, *outcome, taken_at=taken_at))
    return results


def take(app: App, session: Session, publication_ids: list[int]) -> list[tuple[int, InterviewPage, str]]:
    """Lease the publications still queued and due, and load their pages. The lease keeps
    other workers off them; if this one dies, the lease runs out and each page is tried
    again (the blog is asked first)."""
    rows = session.exec(
        select(Publication, Interview)
        .join(Interview, Interview.id == Publication.interview_id)  # type: ignore[arg-type]
        .where(
            Publication.id.in_(publication_ids),  # type: ignore[union-attr]
            Publication.state == PublicationState.QUEUED,
            Publication.next_attempt_at <= now(),  # type: ignore[arg-type]
        )
        .order_by(Publication.id)  # type: ignore[arg-type]
        .with_for_update(skip_locked=True, of=Publication)  # type: ignore[arg-type]
    ).all()
    until = lease_until(app.engine, len(rows))
    for publication, _ in rows:
        publication.next_attempt_at = until
    pages = pages_for(app, session, [(interview, publication.url) for publication, interview in rows])
    return [
        (publication.id or 0, page, publication.remote_id) for (publication, _), page in zip(rows, pages, strict=True)
    ]


def record_publication(
    app: App, session: Session, publication: Publication, page: InterviewPage, remote_id: str,
    outcome: Placement | Failure, *, taken_at: datetime,
) -> bool:  # fmt: skip
    """Record how publishing went; True once the page is up. On failure, the error and when
    to try again (not before the blog's own Retry-After). A page changed since it was taken
    (an edit, a new link, a comment) stays queued, to go up again as it is now."""
    publication.next_attempt_at = now()  # the lease ends: an update or a take-down may follow at once
    if publication.state != PublicationState.QUEUED:
        # Withdrawn (or rejected) while the blog was busy publishing it: take it down again.
        if not isinstance(outcome, Failure):
            publication.remote_id, publication.url = outcome.remote_id, outcome.url
            if publication.state == PublicationState.WITHDRAWN:
                transition(publication, PublicationState.WITHDRAWAL_QUEUED, reason="withdrawn while publishing")
        return False
    if isinstance(outcome, Failure):
        record_failure(publication, outcome)
        logger.warning("publication %s: not published (%s)", publication.id, outcome.error)
        return False
    publication.remote_id, publication.url = outcome.remote_id, outcome.url
    if publication.updated_at > taken_at:
        return True
    transition(publication, PublicationState.PUBLISHED)
    if not remote_id and not app.publisher.permalink(page.number) and outcome.url and app.follow_up:
        # The number's reply could not say where the page would be: say it now.
        interview = session.get(Interview, publication.interview_id)
        assert interview is not None
        tell_author(session, app, interview, "page_ready", outcome.url)
    return True


def withdraw_one(app: App, publication_id: int) -> bool:
    """Take one withdrawn interview's page down; True once it is down."""
    with transaction(app.engine) as session:
        publication = claim(
            session, Publication, publication_id, Publication.state == PublicationState.WITHDRAWAL_QUEUED
        )
        if publication is None:
            return False
        remote_id = publication.remote_id
        outcome = attempt(
            lambda: app.publisher.unpublish(remote_id) if remote_id else None, f"publication {publication_id}"
        )
        if isinstance(outcome, Failure):
            record_failure(publication, outcome)
            logger.warning("publication %s: not taken down (%s)", publication_id, outcome.error)
            return False
        transition(publication, PublicationState.WITHDRAWN)
    return True


def refresh_listing(app: App) -> None:
    with transaction(app.engine) as session:
        total = current_count(session)
        rows = newest_published(session, total)
    pages = [
        interview_page(interview.number, interview.answers_json, interview.submitted_on, app.site.name,
                       publication.url or app.publisher.permalink(interview.number))
        for interview, publication in rows
    ]  # fmt: skip
    app.publisher.refresh_listing(pages, total)


def newest_published(session: Session, total: int) -> list[tuple[Interview, Publication]]:
    """The LISTING_SIZE newest published interviews. Read through a window of the newest
    numbers (the number index), widened until it holds enough, and filtered here: asking the
    database for "published, newest first" makes it sort every published interview, a cost
    that would grow with the site."""
    window = LISTING_SIZE * 2
    while True:
        rows = session.exec(
            select(Interview, Publication)
            .join(Publication, Publication.interview_id == Interview.id)  # type: ignore[arg-type]
            .where(Interview.number > total - window)
            .order_by(Interview.number.desc())  # type: ignore[attr-defined]
        ).all()
        published = [(i, p) for i, p in rows if p.state == PublicationState.PUBLISHED][:LISTING_SIZE]
        if len(published) == LISTING_SIZE or window >= total:
            return published
        window *= 4


def pages_for(app: App, session: Session, interviews: Sequence[tuple[Interview, str]]) -> list[InterviewPage]:
    return load_pages(
        session,
        interviews,
        site_name=app.site.name,
        permalink=app.publisher.permalink,
        comment_address=app.settings.core.from_address,
    )


def publish_comments(app: App, should_stop: Callable[[], bool]) -> tuple[int, int]:
    """Approved comments go onto the blog once their interview is up; comments rejected since,
    or under a withdrawn interview, come off. Returns (done, not done)."""
    done = failed = 0
    for comment_id in due_comment_ids(app):
        if should_stop():
            break
        if publish_comment(app, comment_id):
            done += 1
        else:
            failed += 1
    if failed:
        logger.warning("%d comment(s) not yet on (or off) the blog; see their last error", failed)
    return done, failed


def due_comment_ids(app: App) -> list[int]:
    """Comments to show (approved, not on the blog, their post up) or to take down, that are due."""
    to_show = and_(
        col(Comment.state) == CommentState.APPROVED, col(Comment.remote_id) == "",
        col(Publication.state) == PublicationState.PUBLISHED, col(Publication.remote_id) != "",
    )  # fmt: skip
    to_remove = and_(
        col(Comment.remote_id) != "",
        or_(col(Comment.state) == CommentState.REJECTED, col(Publication.state) == PublicationState.WITHDRAWN),
    )
    with transaction(app.engine) as session:
        query = (
            select(Comment.id)
            .join(Publication, col(Publication.interview_id) == col(Comment.interview_id))
            .where(or_(to_show, to_remove), col(Comment.attempts) < MAX_ATTEMPTS, col(Comment.next_attempt_at) <= now())
            .order_by(col(Comment.id))
        )
        return [row_id for row_id in session.exec(query).all() if row_id is not None]


def publish_comment(app: App, comment_id: int) -> bool:
    """Show one comment on the blog or take it down, as its state and its interview's say.

    The row stays locked during the call, so two workers never post it twice; a crash after
    the blog made it but before its id is stored is caught by the blog's lookup on the retry."""
    with transaction(app.engine) as session:
        comment = claim(session, Comment, comment_id, col(Comment.attempts) < MAX_ATTEMPTS)
        if comment is None:
            return True
        publication = session.exec(select(Publication).where(Publication.interview_id == comment.interview_id)).one()
        show = comment.state == CommentState.APPROVED and publication.state == PublicationState.PUBLISHED
        remove = comment.state == CommentState.REJECTED or publication.state == PublicationState.WITHDRAWN
        if comment.remote_id == SHOWN_IN_PAGE and remove:
            comment.remote_id = ""
            requeue_publications(session, [comment.interview_id])  # the page is rendered again without it
            return True
        if not ((show and not comment.remote_id and publication.remote_id) or (remove and comment.remote_id)):
            return True  # moved on since it was found due
        view, post_id, remote_id = (comment_view(comment) if show else None), publication.remote_id, comment.remote_id
        outcome = attempt(lambda: app.publisher.publish_comment(post_id, view, remote_id), f"comment {comment_id}")
        if isinstance(outcome, Failure):
            record_comment_failure(comment, outcome)
            logger.warning("comment %s: not %s the blog (%s)", comment_id, "on" if show else "off", outcome.error)
            return False
        comment.remote_id = (outcome or SHOWN_IN_PAGE) if show else ""
        comment.attempts, comment.last_error, comment.updated_at = 0, "", now()
    return True


def record_comment_failure(comment: Comment, failure: Failure) -> None:
    """As retries.record_failure, without a failed state: a comment out of attempts (or refused
    for good) is simply no longer due, and keeps its last error for the host."""
    comment.attempts = max(comment.attempts + 1, MAX_ATTEMPTS if failure.permanent else 0)
    comment.last_error = failure.error
    wait = backoff(comment.attempts)
    if failure.retry_after:
        wait = max(wait, timedelta(seconds=failure.retry_after))
    comment.next_attempt_at = now() + wait
    comment.updated_at = now()
