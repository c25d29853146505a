"""`mailflow explain FILE.eml`: what a pass would do with one message, touching nothing.

It reads the settings, questions and templates but opens no database, mailbox or blog,
so it is safe to run on a live installation. Checks that need the database (a
duplicate Message-ID, a questionnaire sent recently, the daily reply limit, earlier
partial answers) are named as such instead.
"""

from __future__ import annotations

import math

from mailflow.answers import extract_answers
from mailflow.classify import AUTOMATIC_RULES, Context, Verdict, classify, rule_too_large
from mailflow.config import Settings, resolve_path
from mailflow.parsing import parse_message
from mailflow.questions import load_questions
from mailflow.render import Renderer, default_templates_dir
from mailflow.scrub import scrub_answer, sender_names


def explain_message(settings: Settings, raw: bytes) -> str:
    core = settings.core
    questions = load_questions(settings.interview.questions_file)
    templates = settings.sections["mailflow"].optional("templates")
    renderer = Renderer(resolve_path(settings.base_dir, templates) if templates else default_templates_dir())
    min_answers = max(1, math.ceil(core.complete_ratio * len(questions)))
    context = Context(frozenset({core.from_address.lower()}), core.max_message_bytes)
    mail = parse_message(raw)
    lines = [
        f"From:       {mail.from_name} <{mail.from_address}>" if mail.from_address else "From:       (none found)",
        f"Subject:    {mail.subject}",
        f"Message-ID: {mail.message_id or '(none)'}",
        f"Size:       {mail.size} bytes; parts: {', '.join(mail.content_types) or '(none)'}",
    ]
    if mail.defects:
        lines.append(f"Defects:    {', '.join(mail.defects)}")
    lines.append("")
    lines.append("Rules:")
    for rule in (*AUTOMATIC_RULES, rule_too_large):
        hit = rule(mail, context)
        name = rule.__name__.removeprefix("rule_")
        lines.append(f"  {'HIT ' if hit else 'miss'} {name}" + (f": {hit.reason} ({hit.detail})" if hit else ""))
    verdict = classify(mail, context)
    lines.append("")
    if verdict.verdict is Verdict.AUTOMATIC:
        lines.append(f"Decision: ignored ({verdict.reason}); no reply would be sent.")
        return "\n".join(lines)
    if verdict.verdict is Verdict.TOO_LARGE:
        lines.append("Decision: rejected (too-large); the sender would be told politely.")
        return "\n".join(lines)
    boilerplate = renderer.email(
        "questionnaire",
        site_name=core.site_name,
        from_name=core.from_name,
        questions=questions,
        min_answers=min_answers,
    ).text.splitlines()
    answers = extract_answers(mail, questions, boilerplate)
    lines.append(f"Answers found: {len(answers.found)} of {len(questions)} (a complete reply needs {min_answers}).")
    for number, question in enumerate(questions, start=1):
        answer = answers.found.get(number)
        lines.append(f"  {number}. {question}")
        shown = scrub_answer(answer, sender_names(mail.from_name, mail.from_address)) if answer else "(missing)"
        lines.extend(f"       {paragraph}" for paragraph in shown.split("\n\n"))
    lines.append("")
    if len(answers.found) >= min_answers:
        lines.append("Decision: numbered; the next number, a private reply with it, and a published page.")
    elif answers.found:
        lines.append("Decision: incomplete; a reply listing the missing questions (the answers are kept).")
    else:
        lines.append("Decision: questionnaire_sent; the questionnaire goes back (at most once a day per sender).")
    lines.append("Not checked here (they need the database): duplicate Message-ID, daily reply limit, earlier answers.")
    return "\n".join(lines)
