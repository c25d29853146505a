"""Generated mail for the benchmarks: varied, realistic answers, and replies as mail clients write them.

Answers are assembled from per-question sentence patterns filled from word lists (jobs,
sectors, places, tools, feelings ...), seeded, so every run sees the same texts and no
two interviews read alike: TF-IDF cross-overs then have real, uneven overlap to work on.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from mailflow.questions import load_questions
from mailflow.testing import REPO, load_eml, make_reply, make_request

QUESTIONS = load_questions(REPO / "questions.txt")

ROLES = [
    "junior developer",
    "warehouse supervisor",
    "primary school teacher",
    "staff nurse",
    "data analyst",
    "bookkeeper",
    "sous chef",
    "graphic designer",
    "electrician",
    "care worker",
    "library assistant",
    "sales representative",
    "project coordinator",
    "lab technician",
    "delivery driver",
    "receptionist",
    "HR generalist",
    "UX researcher",
    "translator",
    "bus driver",
    "community organiser",
    "copywriter",
    "mechanical engineer",
    "pharmacy technician",
    "customer service agent",
    "retail manager",
    "social worker",
    "QA tester",
    "forklift operator",
    "payroll officer",
    "marketing assistant",
    "museum guide",
    "paralegal",
    "barista",
    "site manager",
    "plumber",
    "dental assistant",
    "archivist",
    "event planner",
    "research scientist",
    "web designer",
    "carpenter",
    "accounts assistant",
]
SECTORS = [
    "logistics",
    "healthcare",
    "education",
    "hospitality",
    "public sector",
    "retail",
    "construction",
    "finance",
    "non-profit",
    "manufacturing",
    "tech start-ups",
    "local government",
    "publishing",
    "renewable energy",
    "agriculture",
    "transport",
    "pharmaceuticals",
    "tourism",
    "insurance",
    "the arts",
]
PLACES = [
    "Leeds",
    "a small town",
    "the north-east",
    "Glasgow",
    "Bristol",
    "the countryside",
    "Manchester",
    "Cardiff",
    "Belfast",
    "the coast",
    "London",
    "Birmingham",
    "Norwich",
    "a commuter town",
    "Sheffield",
]
DURATIONS = [
    "three weeks",
    "two months",
    "four months",
    "half a year",
    "eight months",
    "a year",
    "eighteen months",
    "two years",
    "almost three years",
    "since the spring",
    "since my contract ended",
    "since graduating",
]
CHANNELS = [
    "online job boards",
    "recruitment agencies",
    "LinkedIn",
    "cold emails to employers",
    "careers fairs",
    "the job centre",
    "friends and former colleagues",
    "local newspapers",
    "volunteering",
    "trade unions",
    "speculative applications",
    "temping",
    "freelance platforms",
    "alumni networks",
    "walk-ins at shops",
]
HARD = [
    "hearing nothing back after applications",
    "automated rejections at midnight",
    "keeping my confidence up",
    "explaining a gap in my CV",
    "interviews with five rounds and no feedback",
    "paying the rent meanwhile",
    "being told I am overqualified",
    "being told I lack experience",
    "the isolation of searching alone",
    "tests and assessments that take a whole day",
    "ageism nobody admits to",
    "childcare around interviews",
    "travel costs for interviews",
    "psychometric tests",
    "salary never being listed",
    "ghost job adverts",
    "rewriting the same cover letter fifty times",
    "a disability nobody wants to accommodate",
]
HELPED = [
    "a mentor from my old team",
    "a weekly walk with a friend who is also looking",
    "a CV workshop at the library",
    "mock interviews with my sister",
    "a spreadsheet tracking every application",
    "a free online course",
    "joining a job club",
    "volunteering two days a week",
    "a careers adviser who actually listened",
    "keeping regular hours",
    "a peer support group",
    "a short certificate in bookkeeping",
    "talking to people already in the job",
    "a portfolio website",
    "a part-time job to keep afloat",
]
FAILED = [
    "mass-applying to everything",
    "paying for a CV rewriting service",
    "a recruiter who ghosted me",
    "applying only through LinkedIn easy apply",
    "hiding the gap in my CV",
    "unpaid trial shifts",
    "generic cover letters",
    "networking events full of salespeople",
    "an expensive coding bootcamp",
    "lowering my salary expectations again and again",
    "job alerts by email",
    "applying to jobs abroad",
]
SUPPORT = [
    "honest feedback after interviews",
    "help with travel costs",
    "affordable childcare",
    "a paid internship",
    "someone to practise interviews with",
    "employers who reply at all",
    "flexible hours",
    "a training grant",
    "a reference from a recent employer",
    "a mentor in my field",
    "clear salary ranges",
    "a decent laptop",
    "mental health support",
    "a way into the industry without a degree",
    "part-time roles at a senior level",
]
FEELINGS = [
    "tired",
    "hopeful",
    "frustrated",
    "anxious",
    "determined",
    "lonely",
    "stubborn",
    "calmer than before",
    "worn down",
    "surprisingly optimistic",
    "restless",
    "grateful for small things",
]
TOOLS = [
    "Excel",
    "Python",
    "SQL",
    "Photoshop",
    "a forklift licence",
    "first aid",
    "Sage accounting",
    "SAP",
    "Salesforce",
    "Figma",
    "a driving licence",
    "food hygiene level 2",
    "Welsh",
    "Polish",
    "sign language",
]

PATTERNS = {
    1: [
        "I am looking for work as a {role} in {sector}, ideally in {place}.",
        "Something as a {role}, or anything in {sector} really.",
        "A {role} job, full or part time; I have experience with {tool}.",
        "I would like to move from {sector} into {sector2} as a {role}.",
    ],
    2: [
        "About {duration}, mostly through {channel} and {channel2}.",
        "I have been looking for work {duration}. I started with {channel} and then moved to {channel2}.",
        "{duration_cap}. Roughly forty applications, a handful of interviews, mostly via {channel}.",
    ],
    3: [
        "{hard_cap}. It leaves me {feeling}.",
        "Honestly, {hard}. Also {hard2}.",
        "{hard_cap}, and feeling {feeling} most mornings.",
    ],
    4: [
        "{helped_cap}.",
        "{helped_cap}, and {helped2}.",
        "What helped most was {helped}; it kept me {feeling}.",
    ],
    5: [
        "{failed_cap}.",
        "{failed_cap} did not work, nor did {failed2}.",
        "I tried {failed} for {duration} and got nowhere.",
    ],
    6: [
        "{support_cap}.",
        "{support_cap}, and {support2}.",
        "Mostly {support}; in {sector} that is rare.",
    ],
    7: [
        "Keep a log of every application, and talk to a {role} before applying; {helped} made a difference for me.",
        "Do not take the silence personally. {helped_cap} helped me, {failed} did not.",
        "Learn {tool} if you can, and try {channel} early rather than late.",
        "Rest properly at weekends. Searching for {duration} is a marathon, not a sprint.",
    ],
    8: [
        "Thank you for doing this.",
        "I hope employers in {sector} read these.",
        "",
        "Nothing more, good luck to everyone in {place}.",
        "It helps to write this down, I feel {feeling} about it.",
    ],
}


def _fill(rng: random.Random, pattern: str) -> str:
    pick = {
        "role": rng.choice(ROLES), "sector": rng.choice(SECTORS), "sector2": rng.choice(SECTORS),
        "place": rng.choice(PLACES), "duration": rng.choice(DURATIONS), "channel": rng.choice(CHANNELS),
        "channel2": rng.choice(CHANNELS), "hard": rng.choice(HARD), "hard2": rng.choice(HARD),
        "helped": rng.choice(HELPED), "helped2": rng.choice(HELPED), "failed": rng.choice(FAILED),
        "failed2": rng.choice(FAILED), "support": rng.choice(SUPPORT), "support2": rng.choice(SUPPORT),
        "feeling": rng.choice(FEELINGS), "tool": rng.choice(TOOLS),
    }  # fmt: skip
    for key in ("duration", "hard", "helped", "failed", "support"):
        pick[f"{key}_cap"] = pick[key][:1].upper() + pick[key][1:]
    return pattern.format(**pick)


def answers(index: int, seed: int = 7) -> dict[int, str]:
    """The answers of the `index`-th job-seeker: all eight questions, one to three sentences each."""
    rng = random.Random(seed * 1_000_003 + index)
    found = {}
    for number, patterns in PATTERNS.items():
        sentences = [_fill(rng, rng.choice(patterns)) for _ in range(rng.choice((1, 1, 2, 3)))]
        text = " ".join(s for s in sentences if s)
        if text:
            found[number] = text
    return found


def answer_text(index: int, seed: int = 7) -> str:
    """The answers as one text, as the cross-over index sees an interview."""
    return "\n".join(answers(index, seed).values())


def address(tag: str, index: int) -> str:
    return f"{tag}-{index}@bench.example.net"


def reply(tag: str, index: int) -> bytes:
    """A complete reply (Thunderbird style, quoted questions, answers under each), 2-4 KB."""
    return make_reply(
        answers(index),
        sender=f"Person {index} <{address(tag, index)}>",
        questions=QUESTIONS,
        message_id=f"<{tag}.{index}@bench.example.net>",
        extra_headers=_transport_headers(index),
    )


def _transport_headers(index: int) -> dict[str, str]:
    """What a real delivery adds on top (about 1 KB): a Received trace, DKIM, authentication results."""
    signature = "".join(
        random.Random(index).choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", k=344)
    )
    return {
        "Received": f"from mail-{index % 50}.client.example.net (mail-{index % 50}.client.example.net [198.51.100.{index % 250}]) "
        "by mx.example.test (Postfix) with ESMTPS id 4Cb6hV0PjGz9sVZ for <jobs@example.test>; Thu, 12 Nov 2026 09:14:33 +0000",
        "DKIM-Signature": "v=1; a=rsa-sha256; c=relaxed/relaxed; d=client.example.net; s=20230601; "
        f"h=to:subject:message-id:date:from:mime-version:from:to:cc:subject:date:message-id:reply-to; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b={signature}",
        "Authentication-Results": "mx.example.test; dkim=pass header.d=client.example.net; spf=pass smtp.mailfrom=client.example.net",
    }


def replies(tag: str, count: int, start: int = 0) -> Iterator[bytes]:
    for index in range(start, start + count):
        yield reply(tag, index)


def request(tag: str, index: int) -> bytes:
    """A first message from a person: no answers, they want the questionnaire."""
    return make_request(f"{tag}-ask-{index}@bench.example.net", subject="Taking part in the interview",
                        name=f"Asker {index}", message_id=f"<{tag}.ask.{index}@bench.example.net>")  # fmt: skip


AUTOMATIC = ["auto-reply-out-of-office.eml", "bounce-dsn-postfix.eml", "list-digest.eml", "noreply-notification.eml"]


def automatic(tag: str, index: int) -> bytes:
    """Automatic mail (out-of-office, bounce, list digest, no-reply notification) with a fresh Message-ID."""
    raw = load_eml(AUTOMATIC[index % len(AUTOMATIC)])
    head, sep, body = raw.partition(b"\n\n")
    lines = [line for line in head.split(b"\n") if not line.lower().startswith(b"message-id:")]
    lines.append(f"Message-ID: <{tag}.auto.{index}@bench.example.net>".encode())
    return b"\n".join(lines) + sep + body
