"""The opening of an interview, as listings, replies, digests and the cross-over index show it."""

from __future__ import annotations

import json

EXCERPT_CHARS = 220


def excerpt_of(answers_json: str) -> str:
    first = next((p for item in json.loads(answers_json) for p in item["answer"].split("\n\n") if p), "")
    return first if len(first) <= EXCERPT_CHARS else first[:EXCERPT_CHARS].rsplit(" ", 1)[0] + "…"
