"""Cross-overs: which interviews are closest to each other, by the words of their answers.

TF-IDF (scikit-learn) over every interview that is or will be public; cosine similarity
picks the few closest. The index is built once per pass and grows as interviews are
numbered, so finding the related ones for a new interview is one sparse product, not a
rebuild. The host's own links (`mailflow link` / `unlink`) win over the automatic ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from mailflow.models import CrossLink, Interview, Publication
from mailflow.states import PublicationState

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

logger = logging.getLogger(__name__)

RELATED_COUNT = 3
MIN_SIMILARITY = 0.08  # below this, two interviews share little more than common words
REFIT_GROWTH = 0.25  # refit the vocabulary once the index has grown by a quarter
# Only interviews that are (or are about to be) public may be linked or quoted: never one
# waiting for review, rejected, withdrawn, or failing.
VISIBLE = (PublicationState.PUBLISHED, PublicationState.QUEUED)


def interview_text(answers_json: str) -> str:
    return "\n".join(item["answer"] for item in json.loads(answers_json))


class CrossoverIndex:
    """The answers of every visible interview as TF-IDF vectors, by interview number."""

    def __init__(self, documents: Iterable[tuple[int, str]] = ()) -> None:
        self._numbers: list[int] = []
        self._positions: dict[int, int] = {}  # number -> row in the matrix
        self._texts: list[str] = []
        self._matrix: csr_matrix | None = None
        self._vectorizer: Any = None  # a fitted TfidfVectorizer
        self._fitted_size = 0
        for number, text in documents:
            self._positions[number] = len(self._numbers)
            self._numbers.append(number)
            self._texts.append(text)
        self._refit()

    @classmethod
    def from_database(cls, session: Session) -> CrossoverIndex:
        rows = session.exec(
            select(Interview.number, Interview.answers_json)
            .join(Publication, Publication.interview_id == Interview.id)  # type: ignore[arg-type]
            .where(Publication.state.in_(VISIBLE))  # type: ignore[attr-defined]
            .order_by(Interview.number)  # type: ignore[arg-type]
        ).all()
        return cls((number, interview_text(answers)) for number, answers in rows)

    def __len__(self) -> int:
        return len(self._numbers)

    def _refit(self) -> None:
        # scikit-learn takes a second or two to import: only a pass that numbers pays for it.
        from sklearn.feature_extraction.text import TfidfVectorizer

        if not self._texts:
            return
        self._vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, strip_accents="unicode")
        try:
            self._matrix = self._vectorizer.fit_transform(self._texts)
        except ValueError:  # only stop words so far: nothing to compare yet
            self._vectorizer, self._matrix = None, None
        self._fitted_size = len(self._texts)

    def add(self, number: int, text: str) -> None:
        position = self._position(number)
        if position is not None:
            if self._texts[position] != text:  # an edit; the same text again changes nothing
                self._texts[position] = text
                self._refit()
            return
        self._positions[number] = len(self._numbers)
        self._numbers.append(number)
        self._texts.append(text)
        if self._vectorizer is None or len(self._texts) > self._fitted_size * (1 + REFIT_GROWTH):
            self._refit()
        else:
            from scipy.sparse import vstack

            self._matrix = vstack([self._matrix, self._vectorizer.transform([text])], format="csr")

    def _position(self, number: int) -> int | None:
        return self._positions.get(number)

    def remove(self, number: int) -> None:
        position = self._position(number)
        if position is not None:
            del self._numbers[position], self._texts[position]
            self._positions = {n: i for i, n in enumerate(self._numbers)}
            self._refit()

    def related(self, number: int, text: str, count: int = RELATED_COUNT) -> list[int]:
        """The numbers of the closest interviews to `text`, best first, never `number` itself."""
        if self._vectorizer is None or self._matrix is None:
            return []
        import numpy as np

        position = self._position(number)
        if position is not None and self._texts[position] == text and position < self._matrix.shape[0]:
            query = self._matrix[position]  # already vectorised: no need to do it again
        else:
            query = self._vectorizer.transform([text])
        scores = (self._matrix @ query.T).toarray().ravel()
        order = np.argsort(-scores)
        found = []
        for position in order[: count + 1]:
            if scores[position] < MIN_SIMILARITY:
                break
            if self._numbers[position] != number:
                found.append(self._numbers[position])
            if len(found) == count:
                break
        return found


def apply_host_links(session: Session, number: int, automatic: list[int]) -> list[int]:
    """The host's added links first, then the automatic ones the host has not removed."""
    links = session.exec(select(CrossLink).where(CrossLink.from_number == number)).all()
    added = [link.to_number for link in links if link.kind == "added"]
    removed = {link.to_number for link in links if link.kind == "removed"}
    return list(dict.fromkeys([*added, *(n for n in automatic if n not in removed and n != number)]))


def refresh_related(session: Session, index: CrossoverIndex, interview: Interview) -> bool:
    """Recompute one interview's related links; True if they changed (its page needs updating)."""
    automatic = index.related(interview.number, interview_text(interview.answers_json))
    related = apply_host_links(session, interview.number, automatic)
    if json.loads(interview.related_json) == related:
        return False
    interview.related_json = json.dumps(related)
    return True
