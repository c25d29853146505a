"""The publish step: queued interviews go to the blog, withdrawn ones come down, and the
listing (index, feed) is refreshed once per pass when anything changed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlmodel import Session, select

from mailflow.app import App
from mailflow.db import claim, is_sqlite, transaction
from mailflow.models import Interview, Publication
from mailflow.numbering import current_count
from mailflow.pages import InterviewPage, interview_page, load_page
from mailflow.replies import tell_author
from mailflow.retries import Failure, attempt, due_ids, record_failure
from mailflow.states import PublicationState, now, transition

logger = logging.getLogger(__name__)

PUBLISH_LEASE = timedelta(minutes=5)


def publish_all(app: App, should_stop: Callable[[], bool]) -> tuple[int, int, int]:
    """Take down, then publish, what is due; returns (published, not published, withdrawn)."""
    withdrawn = sum(
        withdraw_one(app, row_id) for row_id in due_ids(app, Publication, PublicationState.WITHDRAWAL_QUEUED)
    )
    published = failed = 0
    for publication_id in due_ids(app, Publication, PublicationState.QUEUED):
        if should_stop():
            break
        if publish_one(app, publication_id):
            published += 1
        else:
            failed += 1
    if published or withdrawn or app.listing_stale:
        outcome = attempt(lambda: refresh_listing(app), "listing")
        app.listing_stale = isinstance(outcome, Failure)
        if isinstance(outcome, Failure):
            logger.warning("the index and feed were not refreshed (%s); trying again next pass", outcome.error)
    return published, failed, withdrawn


def publish_one(app: App, publication_id: int) -> bool:
    """Publish one queued interview; on failure record the error and when to try again
    (not before the blog's own Retry-After)."""
    with transaction(app.engine) as session:
        publication = claim(
            session, Publication, publication_id,
            Publication.state == PublicationState.QUEUED, Publication.next_attempt_at <= now(),  # type: ignore[arg-type]
        )  # fmt: skip
        if publication is None:
            return True
        # A lease, so that another worker does not publish it at the same time; if this one
        # dies, the lease runs out and the page is tried again (the blog is asked first).
        publication.next_attempt_at = now() + (timedelta(0) if is_sqlite(app.engine) else PUBLISH_LEASE)
        interview = session.get(Interview, publication.interview_id)
        assert interview is not None
        page = page_for(app, session, interview, publication.url)
        remote_id = publication.remote_id

    def remember(new_remote_id: str) -> None:
        """Commit the blog's id the moment it exists: a crash before the end of publish
        then resumes with an update of that post, never a second one."""
        with transaction(app.engine) as session:
            row = session.get(Publication, publication_id)
            if row is not None and row.remote_id != new_remote_id:
                row.remote_id = new_remote_id

    outcome = attempt(lambda: app.publisher.publish(page, remote_id, remember), f"publication {publication_id}")
    with transaction(app.engine) as session:
        publication = session.get(Publication, publication_id)
        assert publication is not None
        if not isinstance(outcome, Failure):
            publication.remote_id, publication.url = outcome.remote_id, outcome.url
            transition(publication, PublicationState.PUBLISHED)
            if not remote_id and not app.publisher.permalink(interview.number) and outcome.url and app.follow_up:
                # The number's reply could not say where the page would be: say it now.
                tell_author(session, app, interview, "page_ready", outcome.url)
            return True
        record_failure(publication, outcome)
        logger.warning("publication %s: not published (%s)", publication_id, outcome.error)
    return False


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
        rows = session.exec(
            select(Interview, Publication)
            .join(Publication, Publication.interview_id == Interview.id)  # type: ignore[arg-type]
            .where(Publication.state == PublicationState.PUBLISHED)
            .order_by(Interview.number.desc())  # type: ignore[attr-defined]
        ).all()
        total = current_count(session)
    pages = [
        interview_page(interview.number, interview.answers_json, interview.submitted_on, app.site.name,
                       publication.url or app.publisher.permalink(interview.number))
        for interview, publication in rows
    ]  # fmt: skip
    app.publisher.refresh_listing(pages, total)


def page_for(app: App, session: Session, interview: Interview, url: str) -> InterviewPage:
    return load_page(
        session,
        interview,
        site_name=app.site.name,
        url=url,
        permalink=app.publisher.permalink,
        comment_address=app.settings.core.from_address,
    )
