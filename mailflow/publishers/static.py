"""A static site in a folder: one page per interview, an index and an Atom feed.

Each file is written to a temporary name and renamed into place, so a reader (or a
web server) never sees half a page, and a crash leaves the previous version intact (and a
temporary file, removed when that page is next published).
Publishing one interview rewrites only its page; the index and feed are rewritten
once per pass (see worker.py), not once per interview.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mailflow.config import Section
from mailflow.errors import PublishError
from mailflow.files import write_atomically
from mailflow.pages import CommentView, InterviewPage, SiteInfo
from mailflow.publishers import Placement, PublisherEnv, Remember
from mailflow.render import Renderer

INDEX_ENTRIES = 50
FEED_ENTRIES = 20


@dataclass
class StaticPublisher:
    pages_per_batch: ClassVar[int] = 200
    path: Path
    renderer: Renderer
    site: SiteInfo

    @classmethod
    def from_section(cls, section: Section, env: PublisherEnv) -> StaticPublisher:
        return cls(section.path("path", "var/site"), env.renderer, env.site)

    def page_dir(self, number: int) -> Path:
        return self.path / "interviews" / f"{number:05d}"

    def permalink(self, number: int) -> str:
        """See `Publisher.permalink`."""
        return f"{self.site.base_url}interviews/{number:05d}/"

    def publish(self, page: InterviewPage, remote_id: str, remember: Remember | None = None) -> Placement:
        """See `Publisher.publish`. The number is the id, so a retry overwrites the same page
        and there is nothing to remember early."""
        html = self.renderer.page("interview.html", page=page, site=self.site)
        target = self.page_dir(page.number) / "index.html"
        self._write(target, html)
        # A worker killed half way through writing this page left its temporary file. Only
        # the worker holding the page's lease writes it, so any other is such a leftover.
        for leftover in target.parent.glob(f".{target.name}.*.tmp"):
            leftover.unlink(missing_ok=True)
        return Placement(remote_id=page.number_text, url=self.permalink(page.number))

    def unpublish(self, remote_id: str) -> None:
        """See `Publisher.unpublish`."""
        shutil.rmtree(self.page_dir(int(remote_id)), ignore_errors=True)

    def publish_comment(self, post_remote_id: str, comment: CommentView | None, remote_id: str) -> str:
        """See `Publisher.publish_comment`: the page shows its approved comments, and is
        published again whenever they change."""
        return ""

    def refresh_listing(self, pages: Sequence[InterviewPage], total: int) -> None:
        """See `Publisher.refresh_listing`."""
        index = self.renderer.page("index.html", entries=pages[:INDEX_ENTRIES], total=total, site=self.site)
        self._write(self.path / "index.html", index)
        feed_pages = pages[:FEED_ENTRIES]
        updated = f"{feed_pages[0].date_iso}T00:00:00Z" if feed_pages else "1970-01-01T00:00:00Z"
        feed = self.renderer.page("feed.xml", entries=feed_pages, updated=updated, site=self.site)
        self._write(self.path / "feed.xml", feed)

    def _write(self, target: Path, text: str) -> None:
        try:
            write_atomically(target, text)
        except OSError as exc:
            raise PublishError(f"Cannot write the site page {target}: {exc.strerror}. Check [blog] path.") from exc
