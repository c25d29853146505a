"""Cross-overs: which interviews are closest to each other, by the words of their answers.

TF-IDF over every interview that is or will be public; cosine similarity picks the few
closest. The weighting is the classic one (1 + ln tf, smoothed idf, unit-length rows),
written here on scipy's sparse matrices rather than taken from scikit-learn, whose import
alone cost ~2 s and ~60 MB in every worker for this one use.

The index is built once and kept up to date as interviews are numbered, edited and
withdrawn, so finding the related ones for a new interview is one sparse product, not a
rebuild. The host's own links (`mailflow link` / `unlink`) win over the automatic ones.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam
from sqlmodel import Session, func, select

from mailflow.models import CrossLink, Interview, Publication
from mailflow.states import PublicationState, now

if TYPE_CHECKING:
    import numpy as np
    from scipy.sparse import csr_matrix

logger = logging.getLogger(__name__)

RELATED_COUNT = 3
MIN_SIMILARITY = 0.08  # below this, two interviews share little more than common words
REFIT_GROWTH = 0.25  # re-weigh the vocabulary once the index has grown by a quarter
MERGE_PENDING = 64  # rows added since the last merge are kept apart, then merged in one go
QUERY_CHUNK = 32  # texts compared in one product: (words x 32) and (interviews x 32) floats
# Catching up re-reads what changed a little before the last look: rows stamped by another
# worker's clock, or committed just after it, are not missed.
SYNC_MARGIN = timedelta(seconds=5)
# Only interviews that are (or are about to be) public may be linked or quoted: never one
# waiting for review, rejected, withdrawn, or failing.
VISIBLE = (PublicationState.PUBLISHED, PublicationState.QUEUED)

WORD = re.compile(r"\b\w\w+\b")
# Words that say nothing about a job search: two answers sharing them are not alike.
STOP_WORDS = frozenset(
    """a about above after again against all almost also although always am among an and another any anyone
    anything are around as at be became because been before being below between both but by can cannot could
    did do does doing done down during each either else enough even ever every few for from further get gets
    got had has have having he her here hers herself him himself his how however i if in into is it its itself
    just least less let like made make many may me might more most much must my myself neither no nor not now
    of off often on once one only or other others our ours ourselves out over own per perhaps quite rather
    really same she should since so some something still such than that the their theirs them themselves then
    there these they this those though through thus to together too toward towards under until up upon us very
    was we well were what whatever when where whether which while who whom whose why will with within without
    would yet you your yours yourself yourselves im ive id ill dont didnt doesnt isnt wasnt cant couldnt wont
    wouldnt ve ll re""".split()
)


def interview_text(answers_json: str) -> str:
    return "\n".join(item["answer"] for item in json.loads(answers_json))


def words(text: str) -> list[str]:
    """The words that count: lower case, accents folded (café = cafe), no stop words."""
    text = text.lower()
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return [word for word in WORD.findall(text.replace("'", "")) if word not in STOP_WORDS]


_CHANGED_SINCE = (
    select(Interview.number, Interview.answers_json, Publication.state)
    .join(Publication, Publication.interview_id == Interview.id)  # type: ignore[arg-type]
    .where(Publication.updated_at >= bindparam("since"))  # type: ignore[arg-type]
    .order_by(Interview.number)  # type: ignore[arg-type]
)


class CrossoverIndex:
    """The answers of every visible interview as unit-length TF-IDF rows, by interview number.

    Each text is read into words once: its word ids and counts are kept, so weighing the
    vocabulary afresh (as the index grows, or after an edit) is a few array operations, not
    a second reading of every answer. Rows added since are kept in a short pending list and
    merged into the matrix in batches: appending to a sparse matrix one row at a time would
    copy it every time."""

    def __init__(self, documents: Iterable[tuple[int, str]] = ()) -> None:
        self._numbers: list[int] = []
        self._positions: dict[int, int] = {}  # number -> row
        self._hashes: list[int] = []  # of each text: is a text the one already held?
        self._words: list[np.ndarray] = []  # each text's word ids, into _vocabulary
        self._tfs: list[np.ndarray] = []  # ... and their weights, 1 + ln(count)
        self._vocabulary: dict[str, int] = {}
        self._idf: np.ndarray | None = None  # per word id, as of the last weighing
        self._matrix: csr_matrix | None = None  # the first rows; the rest are pending
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # (word ids, weights) of later rows
        self._fitted_size = 0
        self.synced_at: datetime | None = None  # when the database was last read (from_database, catch_up)
        self._taken_in: dict[int, int] = {}  # number -> hash of the answers_json last read for it
        for number, text in documents:
            self._append(number, text)
        self._refit()

    @classmethod
    def from_database(cls, session: Session) -> CrossoverIndex:
        started = now()
        rows = session.exec(
            select(Interview.number, Interview.answers_json)
            .join(Publication, Publication.interview_id == Interview.id)  # type: ignore[arg-type]
            .where(Publication.state.in_(VISIBLE))  # type: ignore[attr-defined]
            .order_by(Interview.number)  # type: ignore[arg-type]
        ).all()
        index = cls((number, interview_text(answers)) for number, answers in rows)
        index.synced_at = started
        index._taken_in = {number: hash(answers) for number, answers in rows}
        return index

    def catch_up(self, session: Session) -> bool:
        """Take in what other processes changed since the last look: every change that
        matters here (an interview numbered, edited, approved, withdrawn) touches its
        publication, so only publications changed since are read, and this costs the same
        on a site of ten interviews or ten thousand. False when the index cannot be trusted
        (it missed something): then build it again."""
        if self.synced_at is None:
            return False
        # PostgreSQL: other workers' transactions commit after they stamp their rows, on their
        # own clocks; look a little further back. SQLite lets one writer in at a time.
        margin = timedelta(0) if session.get_bind().dialect.name == "sqlite" else SYNC_MARGIN
        started, since = now(), self.synced_at - margin
        # Plain rows: in a backlog this window holds the last few seconds' interviews, read
        # again each time, and most are here already, unchanged: their answers are not
        # read again (a hash of the stored text says so).
        for number, answers, state in session.connection().execute(_CHANGED_SINCE, {"since": since}):
            if state not in VISIBLE:
                self.remove(number)
            elif number not in self._positions or self._taken_in.get(number) != hash(answers):
                self.add(number, interview_text(answers))
                self._taken_in[number] = hash(answers)
        visible = session.exec(
            select(func.count()).select_from(Publication).where(Publication.state.in_(VISIBLE))  # type: ignore[attr-defined]
        ).one()
        self.synced_at = started
        return visible == len(self)

    def __len__(self) -> int:
        return len(self._numbers)

    def _count(self, text: str, *, learn: bool) -> tuple[np.ndarray, np.ndarray]:
        """A text's word ids and 1 + ln(count) of each. `learn`: new words join the vocabulary
        (a text being indexed); otherwise they are left out (a text only being compared)."""
        import numpy as np

        counts = Counter(words(text))
        if learn:
            ids = [self._vocabulary.setdefault(word, len(self._vocabulary)) for word in counts]
        else:
            counts = Counter({word: n for word, n in counts.items() if word in self._vocabulary})
            ids = [self._vocabulary[word] for word in counts]
        return np.array(ids, dtype=np.int64), 1 + np.log(np.array(list(counts.values()), dtype=np.float64))

    def _append(self, number: int, text: str) -> None:
        self._positions[number] = len(self._numbers)
        self._numbers.append(number)
        self._hashes.append(hash(text))
        ids, tfs = self._count(text, learn=True)
        self._words.append(ids)
        self._tfs.append(tfs)

    def _refit(self) -> None:
        """Weigh the vocabulary afresh (idf = ln((1 + n) / (1 + df)) + 1) and rebuild the matrix."""
        import numpy as np
        from scipy.sparse import csr_matrix

        total = len(self._words)
        ids = np.concatenate(self._words) if self._words else np.zeros(0, dtype=np.int64)
        self._idf = np.log((1 + total) / (1 + np.bincount(ids, minlength=len(self._vocabulary)))) + 1
        weights = (np.concatenate(self._tfs) if self._tfs else np.zeros(0)) * self._idf[ids]
        lengths = np.array([len(row) for row in self._words], dtype=np.int64)
        norms = np.sqrt(np.bincount(np.repeat(np.arange(total), lengths), weights=weights**2, minlength=total))
        weights /= np.repeat(np.where(norms > 0, norms, 1.0), lengths)
        pointers = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self._matrix = csr_matrix((weights, ids, pointers), shape=(total, max(1, len(self._vocabulary))))
        self._pending = []
        self._fitted_size = total

    def _weigh(self, ids: np.ndarray, tfs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One text's row as of the last weighing: words new since then are left out."""
        import numpy as np

        assert self._idf is not None
        known = ids < len(self._idf)
        ids, weights = ids[known], tfs[known] * self._idf[ids[known]]
        norm = float(np.sqrt(weights @ weights))
        return ids, (weights / norm if norm else weights)

    def _row(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._matrix is not None
        if position < self._matrix.shape[0]:
            start, end = self._matrix.indptr[position], self._matrix.indptr[position + 1]
            return self._matrix.indices[start:end], self._matrix.data[start:end]
        return self._pending[position - self._matrix.shape[0]]

    def add(self, number: int, text: str) -> None:
        position = self._positions.get(number)
        if position is not None:
            if self._hashes[position] != hash(text):  # an edit; the same text again changes nothing
                self._hashes[position] = hash(text)
                self._words[position], self._tfs[position] = self._count(text, learn=True)
                self._refit()
            return
        self._append(number, text)
        if len(self._numbers) > self._fitted_size * (1 + REFIT_GROWTH):
            self._refit()
            return
        self._pending.append(self._weigh(self._words[-1], self._tfs[-1]))
        if len(self._pending) >= MERGE_PENDING:
            self._merge_pending()

    def _merge_pending(self) -> None:
        from scipy.sparse import vstack

        assert self._matrix is not None
        self._matrix = vstack([self._matrix, self._as_matrix(self._pending, self._matrix.shape[1])], format="csr")
        self._pending = []

    def remove(self, *numbers: int) -> None:
        """Take these interviews out; the rest are weighed afresh, once."""
        gone = {self._positions[number] for number in numbers if number in self._positions}
        if not gone:
            return
        kept = [position for position in range(len(self._numbers)) if position not in gone]
        self._numbers = [self._numbers[position] for position in kept]
        self._hashes = [self._hashes[position] for position in kept]
        self._words = [self._words[position] for position in kept]
        self._tfs = [self._tfs[position] for position in kept]
        self._positions = {n: i for i, n in enumerate(self._numbers)}
        self._refit()

    def related(self, number: int, text: str, count: int = RELATED_COUNT) -> list[int]:
        """The numbers of the closest interviews to `text`, best first (ties: the older
        first), never `number` itself."""
        import numpy as np

        if self._matrix is None or not self._numbers:
            return []
        columns, weights = self._query(number, text)
        if not len(columns):
            return []
        query = np.zeros(self._matrix.shape[1])
        query[columns] = weights
        scores = self._matrix @ query
        if self._pending:
            scores = np.concatenate([scores, [float(w @ query[c]) for c, w in self._pending]])
        return self._closest(scores, number, count)

    def related_many(
        self, items: Sequence[tuple[int, str]], count: int = RELATED_COUNT, *, one_after_another: bool = False
    ) -> list[list[int]]:
        """`related` for each (number, text), as one product of the matrix with QUERY_CHUNK of
        them at a time (as dense columns: a sparse-by-sparse product costs more than it saves):
        a batch refreshing the links of a hundred older pages pays for a few products, not a
        hundred. `one_after_another`: the items are new interviews, all in the index, in the
        order they are answered; each is compared with the others and with only the items
        before it, as if they had been added and compared one after another (the same
        closest, unless adding them all re-weighed the words: `REFIT_GROWTH`)."""
        import numpy as np

        if self._matrix is None or not self._numbers:
            return [[] for _ in items]
        width, found = self._matrix.shape[1], []
        pending = self._as_matrix(self._pending, width)  # scored apart: stacking would copy the matrix
        positions = [self._positions[number] for number, _ in items] if one_after_another else []
        for start in range(0, len(items), QUERY_CHUNK):
            chunk = items[start : start + QUERY_CHUNK]
            queries = self._as_matrix([self._query(n, t) for n, t in chunk], width).T.toarray()
            scores = np.vstack([self._matrix @ queries, pending @ queries])
            for j, (number, _) in enumerate(chunk):
                column = scores[:, j]
                column[positions[start + j + 1 :]] = -1.0  # the items after it: not there yet
                found.append(self._closest(column, number, count))
        return found

    def _query(self, number: int, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The row to compare `text` by: its own if the index holds that text already."""
        position = self._positions.get(number)
        if position is not None and self._hashes[position] == hash(text):
            return self._row(position)  # already weighed: no need to do it again
        return self._weigh(*self._count(text, learn=False))

    @staticmethod
    def _as_matrix(rows: Sequence[tuple[np.ndarray, np.ndarray]], width: int) -> csr_matrix:
        import numpy as np
        from scipy.sparse import csr_matrix

        pointers = np.zeros(len(rows) + 1, dtype=np.int64)
        pointers[1:] = np.cumsum([len(columns) for columns, _ in rows])
        data = np.concatenate([w for _, w in rows]) if rows else np.zeros(0)
        indices = np.concatenate([c for c, _ in rows]) if rows else np.zeros(0, dtype=np.int64)
        return csr_matrix((data, indices, pointers), shape=(len(rows), width))

    def _closest(self, scores: np.ndarray, number: int, count: int) -> list[int]:
        """The best `count` numbers by `scores` (one per row of the index), never `number`."""
        import numpy as np

        # Equal texts score equal, but sums taken in another order (a product, a dot) may
        # differ in the last bits: rounded, ties go to the older interview whichever way.
        scores = np.round(scores, 12)
        candidates = min(count + 1, len(scores))
        best = (
            np.argpartition(-scores, candidates - 1)[:candidates]
            if candidates < len(scores)
            else np.arange(len(scores))
        )
        found = []
        for position in sorted(best, key=lambda p: (-scores[p], p)):
            if scores[position] < MIN_SIMILARITY:
                break
            if self._numbers[position] != number:
                found.append(self._numbers[position])
            if len(found) == count:
                break
        return found


def host_links(session: Session, numbers: Iterable[int]) -> dict[int, list[CrossLink]]:
    """The host's links from each of `numbers`, in one query."""
    found: dict[int, list[CrossLink]] = {}
    for link in session.exec(select(CrossLink).where(CrossLink.from_number.in_(set(numbers)))).all():  # type: ignore[attr-defined]
        found.setdefault(link.from_number, []).append(link)
    return found


def apply_host_links(links: list[CrossLink], number: int, automatic: list[int]) -> list[int]:
    """The host's added links first, then the automatic ones the host has not removed."""
    added = [link.to_number for link in links if link.kind == "added"]
    removed = {link.to_number for link in links if link.kind == "removed"}
    return list(dict.fromkeys([*added, *(n for n in automatic if n not in removed and n != number)]))


def refresh_related(
    session: Session,
    index: CrossoverIndex,
    interview: Interview,
    links: list[CrossLink] | None = None,
    automatic: list[int] | None = None,
) -> bool:
    """Recompute one interview's related links; True if they changed (its page needs updating).
    `links`: the host's links from it, and `automatic`: the index's closest to it, when the
    caller has already read them (for many at once)."""
    if links is None:
        links = host_links(session, [interview.number]).get(interview.number, [])
    if automatic is None:
        automatic = index.related(interview.number, interview_text(interview.answers_json))
    related = apply_host_links(links, interview.number, automatic)
    if json.loads(interview.related_json) == related:
        return False
    interview.related_json = json.dumps(related)
    return True
