"""The cross-over index: which interviews read alike, kept current across passes and processes."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlmodel import Session, select

from mailflow import crossovers as crossovers_module
from mailflow.app import App, build_app
from mailflow.cli import main
from mailflow.config import load_settings
from mailflow.crossovers import MERGE_PENDING, CrossoverIndex, words
from mailflow.models import Interview, Publication
from mailflow.states import now
from mailflow.testing import make_reply, make_settings
from mailflow.worker import run_pass

from conftest import QUESTIONS, deliver

WAREHOUSE = "Forklift night shifts at a logistics depot; the warehouse agency never called back."
NURSING = "Hospital ward nursing, clinical rotas and patients; the trust interviewed me twice."
TEACHING = "Supply teaching in primary schools, lesson plans and a headteacher's reference."


def test_alike_answers_are_related_and_common_words_are_not_enough() -> None:
    index = CrossoverIndex([(1, WAREHOUSE), (2, NURSING), (3, TEACHING)])
    similar = "Night shifts driving a forklift in a warehouse depot for an agency."
    assert index.related(4, similar) == [1]
    # Sharing only words like "the", "and", "was" makes nothing alike.
    assert index.related(5, "It was the one and only thing that I would have done.") == []
    assert 1 not in index.related(1, WAREHOUSE), "never related to itself"


def test_words_fold_case_accents_and_drop_stop_words() -> None:
    assert words("The CAFÉ job, and a résumé I'd sent") == ["cafe", "job", "resume", "sent"]


def test_an_index_grown_one_by_one_finds_what_a_fresh_one_finds() -> None:
    texts = {n: f"{WAREHOUSE} Shift pattern {n % 7}, depot {n % 11}." for n in range(1, 40)}
    texts.update({n: f"{NURSING} Ward {n % 5}." for n in range(40, 40 + MERGE_PENDING + 10)})
    grown = CrossoverIndex([(1, WAREHOUSE)])
    for number, text in texts.items():
        grown.add(number, text)  # past a refit and past a merge of pending rows
    fresh = CrossoverIndex(texts.items())
    probe = f"{NURSING} Ward 3."
    assert set(grown.related(0, probe)) == set(fresh.related(0, probe))
    assert all(n >= 40 for n in grown.related(0, probe))
    grown.add(45, TEACHING)  # an edit changes what the interview is close to
    assert 45 not in grown.related(0, probe)
    grown.remove(46)
    assert 46 not in grown.related(0, probe) and len(grown) == len(texts) - 1


def test_many_compared_at_once_find_what_each_finds_alone() -> None:
    """The older pages of a batch are compared in one product (related_many): the same
    answers as one at a time, for rows merged and pending, texts held and new, and a text
    with no known word."""
    texts = {n: f"{(WAREHOUSE, NURSING, TEACHING)[n % 3]} Shift {n % 7}, town {n % 11}." for n in range(1, 80)}
    index = CrossoverIndex(list(texts.items())[:60])
    for number, text in list(texts.items())[60:]:
        index.add(number, text)  # some rows pending
    assert index._pending, "the test needs pending rows"
    asked = [*texts.items(), (200, "Night shifts driving a forklift."), (201, "Zyx qwv."), (7, NURSING)]
    alone = [index.related(number, text) for number, text in asked]
    assert index.related_many(asked) == alone
    assert sum(1 for found in alone if found) > 70, "most have cross-overs: the comparison means something"
    assert CrossoverIndex().related_many(asked[:2]) == [[], []]


def test_equal_texts_tie_the_same_way_one_at_a_time_and_all_at_once() -> None:
    """Copies of older texts, some still pending: the scores of equal texts, summed in
    another order by a product and by a dot, may differ in the last bits; ties must still
    go to the older interview both ways, or a page's links would flip between passes."""
    rng = random.Random(7)
    vocabulary = [f"word{n}" for n in range(400)]
    texts = {n: " ".join(rng.choice(vocabulary) for _ in range(rng.randint(5, 40))) for n in range(1, 201)}
    index = CrossoverIndex(texts.items())
    for number in range(201, 261):
        texts[number] = (
            texts[rng.randint(1, 200)] if number % 2 else " ".join(rng.choice(vocabulary) for _ in range(20))
        )
        index.add(number, texts[number])
    asked = list(texts.items())
    assert index.related_many(asked) == [index.related(number, text) for number, text in asked]


def test_a_batch_compared_at_once_finds_what_adding_one_at_a_time_finds() -> None:
    """A batch of new interviews joins the index first, then each is compared with the
    older ones and those of the batch before it, never after it (related_many in_order):
    what adding and comparing them one at a time finds, pending rows and copies included."""
    subjects = ("maths", "history", "music", "drama", "science", "geography", "latin")  # known words
    older = {n: f"{(WAREHOUSE, NURSING, TEACHING)[n % 3]} Also {subjects[n % 7]}." for n in range(1, 61)}
    batch = {n: f"{TEACHING} Teaching {subjects[n % 7]} to {subjects[n % 5]} students." for n in range(61, 73)}
    batch[70] = batch[64]  # a copy of an earlier one in the same batch
    batch[71] = f"{WAREHOUSE} Shift 2, town 5."
    one_by_one = CrossoverIndex(older.items())
    alone = []
    for number, text in batch.items():
        one_by_one.add(number, text)
        alone.append(one_by_one.related(number, text))
    together = CrossoverIndex(older.items())
    for number, text in batch.items():
        together.add(number, text)
    assert together.related_many(list(batch.items()), one_after_another=True) == alone
    assert all(alone) and any(max(found) > 60 for found in alone), "some are closest to one of the batch"
    assert alone[list(batch).index(70)][0] == 64, "the copy finds its original"
    assert alone[list(batch).index(71)] and max(alone[list(batch).index(71)]) <= 60


def test_a_batch_is_compared_in_the_order_it_is_answered_not_by_number() -> None:
    """Workers on PostgreSQL can number two replies against their arrival order, so a batch
    may answer #11 before #10: #11 must not be given #10, which has no page yet. Also past
    a re-weighing of the words (the batch grows the index by more than a quarter): then
    the closest may differ from one at a time, but never name an item answered later.
    Several leave the index at once (a batch cut short)."""
    older = {n: f"{WAREHOUSE} Also {n}th shift." for n in range(1, 9)}
    batch = [(11, f"{WAREHOUSE} Night."), (10, f"{WAREHOUSE} Night."), *((n, NURSING) for n in range(12, 20))]
    index = CrossoverIndex(older.items())
    for number, text in batch:
        index.add(number, text)  # past a re-weighing: 8 -> 18 interviews
    found = index.related_many(batch, one_after_another=True)
    assert found[0] and 10 not in found[0] and found[1][0] == 11, found[:2]
    for place, (number, _) in enumerate(batch):
        later = {n for n, _ in batch[place + 1 :]}
        assert not later & set(found[place]), (number, found[place])
    index.remove(10, 11, 99)
    assert len(index) == len(older) + len(batch) - 2
    assert not {10, 11} & set(index.related(0, f"{WAREHOUSE} Night."))


def number_replies(app: App, *texts: str) -> None:
    for text in texts:
        answers = {n: f"{text} ({n})" for n in range(1, len(QUESTIONS) + 1)}
        deliver(app, make_reply(answers, sender=f"P <p{abs(hash(text))}@example.net>", questions=QUESTIONS))
    run_pass(app)


def test_a_long_running_worker_sees_what_other_processes_changed(database_url: str, tmp_path: Path) -> None:
    app = build_app(load_settings(make_settings(tmp_path, database=database_url)))
    number_replies(app, WAREHOUSE, NURSING)
    with Session(app.engine) as session:
        kept = app.crossovers(session)
        assert len(kept) == 2
    # Another worker on the same database numbers one more; the host withdraws #2 by command.
    other = build_app(load_settings(app.settings.path))
    number_replies(other, TEACHING)
    withdrawn = CliRunner().invoke(main, ["--config", str(app.settings.path), "withdraw", "2"])
    assert withdrawn.exit_code == 0, withdrawn.output
    other.close()
    app.recheck_crossovers()  # as every pass (every batch on PostgreSQL) does
    with Session(app.engine) as session:
        index = app.crossovers(session)
    app.close()
    assert index is kept, "caught up, not rebuilt"
    assert len(index) == 2 and index.related(9, TEACHING) == [3]
    assert index.related(9, NURSING) == []


def test_an_index_that_missed_changes_is_built_again(app: App) -> None:
    number_replies(app, WAREHOUSE, NURSING)
    with Session(app.engine) as session:
        kept = app.crossovers(session)
    kept.synced_at = now() + timedelta(hours=1)  # as if its last look were later than the change below
    other = build_app(load_settings(app.settings.path))
    number_replies(other, TEACHING)
    other.close()
    app.recheck_crossovers()
    with Session(app.engine) as session:
        index = app.crossovers(session)
    assert index is not kept and len(index) == 3
    assert index.related(9, TEACHING) == [3]


def test_catching_up_takes_in_an_edit_and_reads_unchanged_answers_only_once(
    database_url: str, tmp_path: Path, monkeypatch
) -> None:
    """Catching up re-reads the last few seconds' changes every time (a margin for other
    workers' clocks): answers already taken in from the database are not read again (those
    this worker added itself, once), an edit is."""
    app = build_app(load_settings(make_settings(tmp_path, database=database_url)))
    number_replies(app, WAREHOUSE, NURSING)
    with Session(app.engine) as session:
        index = app.crossovers(session)
    read: list[str] = []
    real_text = crossovers_module.interview_text
    monkeypatch.setattr(crossovers_module, "interview_text", lambda answers: read.append(answers) or real_text(answers))
    for _ in range(3):  # nothing changed, but within the margin: each read once at most
        with Session(app.engine) as session:
            assert index.catch_up(session)
    assert len(read) <= 2
    read.clear()
    with Session(app.engine) as session:
        assert index.catch_up(session)
    assert read == []
    # Another process edits #2's answers (its page is queued again, so it counts as changed).
    with Session(app.engine) as session:
        second = session.exec(select(Interview).where(Interview.number == 2)).one()
        second.answers_json = json.dumps([{"question": QUESTIONS[0], "answer": TEACHING}])
        page = session.exec(select(Publication).where(Publication.interview_id == second.id)).one()
        page.updated_at = now()
        session.add_all([second, page])
        session.commit()
    with Session(app.engine) as session:
        assert index.catch_up(session)
    assert len(read) == 1 and TEACHING in read[0]
    assert index.related(9, TEACHING) == [2] and index.related(9, NURSING) == []
    app.close()
