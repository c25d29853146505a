"""Cross-overs at scale: related interviews for a new one among 10,000, with mailflow's own index.

Measured: building the CrossoverIndex over N varied answer texts, and `related()` +
`add()` for one new interview (the median of several new ones). Also what numbering an
interview really asks of the index (interviews.link_crossovers): `add`, `related` for
the new one and again for each of its related interviews, whose links may change.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from benchmarks import corpus
from mailflow.crossovers import CrossoverIndex

NEW_INTERVIEWS = 7


@dataclass
class CrossoverTimes:
    size: int
    build: float
    related_add: float  # median seconds for related() + add() of one new interview
    link_step: float  # median seconds for what link_crossovers asks of the index


def measure(size: int) -> CrossoverTimes:
    texts = {number: corpus.answer_text(number) for number in range(1, size + 1)}
    started = time.perf_counter()
    index = CrossoverIndex(texts.items())
    build = time.perf_counter() - started
    related_add, link_step = [], []
    for offset in range(1, NEW_INTERVIEWS + 1):
        number = size + offset
        text = texts[number] = corpus.answer_text(number)
        started = time.perf_counter()
        found = index.related(number, text)
        index.add(number, text)
        related_add.append(time.perf_counter() - started)
        started = time.perf_counter()
        for other in found:
            index.related(other, texts[other])
        link_step.append(related_add[-1] + time.perf_counter() - started)
    return CrossoverTimes(size, build, statistics.median(related_add), statistics.median(link_step))
