"""Access to ../shared/corpus: real-world mail from other projects' test suites (never copied here)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailflow.testing import REPO

CORPUS = Path(os.environ.get("MAILFLOW_CORPUS", REPO.parent / "shared" / "corpus"))


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    categories: frozenset[str]

    @property
    def name(self) -> str:
        return str(self.path.relative_to(CORPUS))


def corpus_files() -> list[CorpusFile]:
    """Every file in the corpus manifest; skips (or fails under CI=true) when the corpus is absent."""
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        message = f"the shared mail corpus is not at {CORPUS} (set MAILFLOW_CORPUS to its folder)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with manifest.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [CorpusFile(CORPUS / row["path"], frozenset(row["category"].split(","))) for row in rows]
