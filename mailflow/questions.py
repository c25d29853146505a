"""The questionnaire's questions, read from the file the host edits."""

from __future__ import annotations

from pathlib import Path

from mailflow.errors import ConfigError


def load_questions(path: str | Path) -> tuple[str, ...]:
    """One question per line; blank lines and lines starting with # are ignored.

    A leading number the host may have typed ("3. What ...?") is dropped: numbering
    is ours to add, so that reordering the file renumbers the questionnaire.
    """
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"The questions file {file} does not exist. Check [interview] questions.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"The questions file {file} is not UTF-8 text. Save it as UTF-8.") from None
    questions = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        head, _, rest = text.partition(" ")
        if rest and head.rstrip(".):").isdigit():
            text = rest.strip()
        questions.append(text)
    if not questions:
        raise ConfigError(f"The questions file {file} has no questions in it.")
    return tuple(questions)
