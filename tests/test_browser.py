"""The published site in real headless Chromium: readers on a phone and a desktop (issue 6),
and answers made of XSS vectors that must stay text, run nothing and load nothing (issue 5).

Every site here is built by the real pipeline (replies delivered to the Maildir, one pass)
and served over HTTP on 127.0.0.1; `[blog] base_url` is the server's address, so the
site's own links work. tests/browser.py drives Chromium; tests/xss_vectors.py holds the
vectors. Screenshots of the readers' pages go under the test's temporary folder (printed;
`pytest -s` shows the path) and, when MAILFLOW_SCREENSHOTS is set, into that folder too.
"""

from __future__ import annotations

import html
import os
import re
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page
from sqlmodel import Session, select

from mailflow.app import App, build_app
from mailflow.config import load_settings
from mailflow.models import Publication
from mailflow.scrub import scrub_answer
from mailflow.testing import make_reply, make_settings
from mailflow.worker import run_pass

from browser import Browser, Watch, save_screenshot, serve_folder
from conftest import QUESTIONS, deliver
from service_env import require_env
from xss_vectors import VECTORS

PHONE, DESKTOP = 390, 1280
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    executable = require_env("MAILFLOW_TEST_CHROMIUM")
    with Browser(executable, tmp_path_factory.mktemp("chromium-profile")) as chromium:
        yield chromium


@contextmanager
def published_site(folder: Path, replies: list[bytes], **blog_env: str) -> Iterator[tuple[App, str]]:
    """Serve `folder`'s site on 127.0.0.1, then deliver `replies` and run one pass; yields (app, url).

    `blog_env` sets [blog] keys through the environment (MAILFLOW_BLOG_<KEY>), which wins over
    the settings file; base_url is always the local server's address."""
    site = folder / "var" / "site"
    site.mkdir(parents=True)
    with serve_folder(site) as url, pytest.MonkeyPatch.context() as env:
        for key, value in {"base_url": url, **blog_env}.items():
            env.setenv(f"MAILFLOW_BLOG_{key.upper()}", value)
        app = build_app(load_settings(make_settings(folder)))
        try:
            for raw in replies:
                deliver(app, raw)
            report = run_pass(app)
            assert report.decided.get("numbered") == len(replies), report.summary()
            yield app, url
        finally:
            app.close()


def normalised(text: str) -> str:
    return " ".join(text.replace("\x00", "").split())


def expected_paragraphs(answer: str, sender_name: str) -> list[str]:
    """An answer's paragraphs as a reader should see them: scrubbed, whitespace collapsed."""
    return [normalised(p) for p in scrub_answer(answer, [sender_name]).split("\n\n") if p.strip()]


# --- Readers (issue 6) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    name: str
    address: str
    answers: dict[int, str]

    def reply(self) -> bytes:
        return make_reply(
            self.answers,
            sender=f"{self.name} <{self.address}>",
            questions=QUESTIONS,
            message_id=make_msgid(domain=self.address.split("@")[1]),
        )


PEOPLE = (
    Person(
        "María López",
        "maria.lopez@correo.example",
        {
            1: "Registered nurse posts, ideally on a children's ward. I trained in Zaragoza and worked in paediatrics "
            "for eleven years, so I am also looking at community health roles (vacunación clinics, school nursing) "
            "where my Spanish helps families feel at home. 🙂",
            2: "Since March, so about eight months.\n\nAt first I applied to everything on "
            "jobs.example.org/search/results?role=registered-nurse&location=anywhere&radius=100&sort=newest&page=12 "
            "and heard nothing back. Then I changed tactics: fewer applications, each one rewritten for the ward, "
            "a short note to the ward manager and a follow-up call a week later.\n\n"
            "I have had four interviews since then, two of them last month.",
            3: "The silence. You send a carefully written letter and nothing comes back, not even a no. I understand "
            "hospitals are busy, but a two-line reply would mean so much. Some days I refresh my inbox every ten "
            "minutes… 😅",
            4: "A group of nurses who meet online on Thursdays. We read each other's letters and practise interview "
            "questions. One of them, Jürgen, rewrote my CV with me line by line. Write to me at "
            "maria.lopez@correo.example or call +34 612 345 678 if you want to join.",
            5: "Recruitment agencies. Three of them took my details, one called twice, and then they all went quiet. "
            "My profile is still at https://www.linkedin.com/in/maria-lopez-rn-paediatrics-zaragoza-madrid-london-2026 "
            "but I no longer expect much from it.",
            6: "Honest feedback after an interview. Even “we chose someone with more experience on adult wards” would "
            "tell me what to work on.\n\nChildcare on interview days would help too: mine are four and seven.",
            7: "Call the ward, not only HR. Ask about the team, the shifts, the patients. Keep a notebook of every "
            "application: date, contact, what you wrote, what they said. It turns the waiting into something you "
            "can see.\n\nAnd rest. You cannot care for anyone on an empty tank, including yourself. 💪",
            8: "Thank you for doing this. Reading the other interviews made me feel less alone. ¡Ánimo a todos!",
        },
    ),
    Person(
        "Tobias Schneider",
        "t.schneider@posteo.example",
        {
            1: "Warehouse and logistics, night shifts preferred. I hold the "
            "Lagerlogistikfachkraftweiterbildungszertifikat and a forklift licence, and I would take a "
            "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft job if it paid.",
            2: "Fourteen months. Pfff… 😤\n\nMy profile headline is "
            "#OpenToWork#Logistics#Warehouse#ForkliftLicence#NightShifts#Hamburg#Bremen#Kiel#Lübeck#Rostock "
            "because a recruiter said keywords matter. It did not change a thing.\n\n"
            "I keep a spreadsheet: 212 applications, 9 interviews, 2 offers that were withdrawn.",
            3: "Being told I am over-qualified for jobs I have done for twenty years, and under-qualified for the ones "
            "that ask for a degree in supply-chain management.",
            4: "My neighbour, who drives for a parcel company, told me which depots were really hiring. That was worth "
            "more than every job board together.",
            5: "Paying for a CV review service: €149 for three changed adjectives.",
            6: "A driving course paid by the job centre, so I could move into delivery work.",
            7: "Ask people who already work there. Ask at the gate at shift change. Most of them remember being where "
            "you are.",
            8: "Grüße aus Hamburg — and good luck to everyone reading this. 🍀",
        },
    ),
    Person(
        "Aisha Okafor",
        "aisha.o@mail.example",
        {
            1: "A move from primary teaching into user research. I have run about 2,000 parent meetings, which is "
            "basically interviewing, and I love finding out why people do what they do. 👩🏾‍💻",
            3: "Sooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooo "
            "many portfolio requirements, when I cannot show school work for privacy reasons.",
            4: "A free evening course at the library, and a café where other career-changers meet on Saturdays.",
            7: "Your old job taught you more than you think. Write the list, then translate it into the new "
            "field's words. It felt naïve at first; it works.",
            8: "Merci, and keep going.",
        },
    ),
    Person("Kwame Mensah", "kwame@example.org", {n: f"Short answer {n}." for n in range(1, 9)}),
)


@pytest.fixture(scope="module")
def readers_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with published_site(tmp_path_factory.mktemp("readers"), [person.reply() for person in PEOPLE]) as (_, url):
        yield url


@pytest.fixture(scope="module")
def screenshot_folders(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folders = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("MAILFLOW_SCREENSHOTS"):
        folders.append(Path(os.environ["MAILFLOW_SCREENSHOTS"]))
    print(f"\nscreenshots: {', '.join(str(folder) for folder in folders)}")
    return folders


# One snapshot of the page's structure and geometry, measured by the browser itself.
LAYOUT = """() => {
  const root = document.documentElement;
  const style = (el) => getComputedStyle(el);
  const label = (el) => el.tagName.toLowerCase() + (el.className ? "." + el.className : "")
    + " «" + el.textContent.trim().replace(/\\s+/g, " ").slice(0, 40) + "»";
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const blocks = [...document.querySelectorAll(
    "header, h1, h2, p.meta, p.counter, dt, dd, ol.interviews > li, main > p, section, nav, footer")];
  const overlaps = [];
  blocks.forEach((a, i) => blocks.slice(i + 1).forEach((b) => {
    if (a.contains(b) || b.contains(a)) return;
    const [al, at, ar, ab] = box(a), [bl, bt, br, bb] = box(b);
    if (Math.min(ar, br) - Math.max(al, bl) > 0.5 && Math.min(ab, bb) - Math.max(at, bt) > 0.5)
      overlaps.push(label(a) + " overlaps " + label(b));
  }));
  const outside = blocks.filter((el) => { const [l, , r] = box(el); return l < -0.5 || r > root.clientWidth + 0.5; })
    .map(label);
  const pairs = [...document.querySelectorAll("dl.qa > dt")].map((dt) => {
    const dd = dt.nextElementSibling;
    const next = dd && dd.nextElementSibling;
    return {
      question: dt.textContent.trim(), next: dd ? dd.tagName : "",
      answer: dd ? [...dd.querySelectorAll("p")].map((p) => p.textContent) : [],
      gap_to_answer: dd ? box(dd)[1] - box(dt)[3] : null,
      gap_to_next_question: next ? box(next)[1] - box(dd)[3] : null,
      question_weight: Number(style(dt).fontWeight), answer_weight: dd ? Number(style(dd).fontWeight) : 0,
    };
  });
  const answers = document.querySelector("dl.qa");
  const below = [...document.querySelectorAll("main section")]
    .filter((s) => answers && box(s)[1] < box(answers)[3] - 0.5).map(label);
  const h1 = document.querySelectorAll("h1");
  return {
    scroll_width: root.scrollWidth, client_width: root.clientWidth,
    lang: root.getAttribute("lang") || "", title: document.title,
    count: Object.fromEntries(["h1", "main", "body > header", "body > footer", "nav", "dl.qa > dd"]
      .map((s) => [s, document.querySelectorAll(s).length])),
    h1_text: h1.length ? h1[0].textContent : "",
    h1_px: h1.length ? parseFloat(style(h1[0]).fontSize) : 0,
    body_px: parseFloat(style(document.body).fontSize),
    colors: Object.fromEntries(["body", "a", "p.meta", "footer", "dt", "dd"].filter((s) => document.querySelector(s))
      .map((s) => [s, style(document.querySelector(s)).color])),
    background: style(document.body).backgroundColor,
    nav_links: [...document.querySelectorAll("nav a")].map((a) => a.href),
    main_text: document.querySelector("main") ? document.querySelector("main").innerText : "",
    overlaps, outside, pairs, sections_above_answers: below,
  };
}"""


def assert_reads_well(page: Page, what: str) -> dict:
    """What every page of the site promises a reader, at the page's current width."""
    layout = page.evaluate(LAYOUT)
    assert layout["scroll_width"] <= layout["client_width"], f"{what}: scrolls sideways ({layout['scroll_width']} px)"
    assert layout["outside"] == [], f"{what}: blocks stick out of the screen: {layout['outside']}"
    assert layout["overlaps"] == [], f"{what}: blocks overlap: {layout['overlaps']}"
    assert layout["lang"] == "en", f"{what}: <html lang> is {layout['lang']!r}"
    for selector in ("h1", "main", "body > header", "body > footer"):
        assert layout["count"][selector] == 1, f"{what}: expected one {selector}, found {layout['count'][selector]}"
    assert layout["count"]["nav"] >= 1, f"{what}: no <nav>"
    assert layout["body_px"] >= 16, f"{what}: body text is {layout['body_px']} px"
    assert layout["h1_px"] >= 1.5 * layout["body_px"], f"{what}: the heading is not prominent"
    for selector, color in layout["colors"].items():
        ratio = contrast(color, layout["background"])
        assert ratio >= 4.5, f"{what}: {selector} text {color} on {layout['background']} has contrast {ratio:.2f}"
    return layout


def assert_links_home_and_feed(layout: dict, site_url: str) -> None:
    assert site_url in layout["nav_links"], f"no link back to the index in <nav>: {layout['nav_links']}"
    assert f"{site_url}feed.xml" in layout["nav_links"], f"no link to the feed in <nav>: {layout['nav_links']}"
    with urllib.request.urlopen(f"{site_url}feed.xml", timeout=5) as response:
        assert ET.fromstring(response.read()).tag == f"{ATOM}feed"


def contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio of two CSS rgb()/rgba() colours (alpha ignored: the site uses none)."""

    def luminance(color: str) -> float:
        channels = [int(c) / 255 for c in re.findall(r"\d+", color)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@pytest.mark.parametrize("width", [PHONE, DESKTOP])
def test_index_reads_well_on_phone_and_desktop(
    browser: Browser, readers_site: str, screenshot_folders: list[Path], width: int
) -> None:
    page, _ = browser.open(readers_site, width=width)
    try:
        save_screenshot(page, screenshot_folders, f"index-{width}")
        layout = assert_reads_well(page, f"index at {width} px")
        assert_links_home_and_feed(layout, readers_site)
        text = normalised(layout["main_text"])
        assert f"{len(PEOPLE):05d} interviews so far" in text
        for number in range(1, len(PEOPLE) + 1):
            assert f"#{number:05d}" in text
        assert normalised(PEOPLE[1].answers[1])[:100] in text, "the excerpt of an interview is on the index"
    finally:
        page.close()


@pytest.mark.parametrize("width", [PHONE, DESKTOP])
@pytest.mark.parametrize("number", [1, 2, 3])
def test_interview_reads_well_on_phone_and_desktop(
    browser: Browser, readers_site: str, screenshot_folders: list[Path], width: int, number: int
) -> None:
    person = PEOPLE[number - 1]
    page, _ = browser.open(f"{readers_site}interviews/{number:05d}/", width=width)
    try:
        save_screenshot(page, screenshot_folders, f"interview-{number:05d}-{width}")
        layout = assert_reads_well(page, f"interview {number:05d} at {width} px")
        assert_links_home_and_feed(layout, readers_site)
        assert f"#{number:05d}" in layout["h1_text"], "the number is in the page's one heading"
        assert layout["count"]["dl.qa > dd"] == len(person.answers)
        for pair, (question_number, answer) in zip(layout["pairs"], sorted(person.answers.items()), strict=True):
            assert pair["question"] == QUESTIONS[question_number - 1]
            assert pair["next"] == "DD", f"question {question_number} is not followed by its answer"
            assert [normalised(p) for p in pair["answer"]] == expected_paragraphs(answer, person.name)
            assert pair["question_weight"] >= 600 > pair["answer_weight"], "questions stand out from answers"
            assert 0 <= pair["gap_to_answer"] < 40, f"answer {question_number} is far from its question"
            if pair["gap_to_next_question"] is not None:
                assert pair["gap_to_answer"] < pair["gap_to_next_question"], (
                    f"answer {question_number} sits closer to the next question than to its own"
                )
        assert layout["sections_above_answers"] == [], "comments and related links come below the answers"
        text = layout["main_text"]
        assert person.name.split()[0] not in text and person.address not in text
    finally:
        page.close()


# --- XSS (issue 5) -------------------------------------------------------------------------------

HOSTILE_SENDER = "Sam Rivera"


def vectors_by_question() -> dict[int, list[str]]:
    """The vectors dealt out over the questions, one paragraph each, the first vector first (so
    it is also the excerpt on the index and in the feed)."""
    answers: dict[int, list[str]] = {}
    for index, vector in enumerate(VECTORS):
        answers.setdefault(index % len(QUESTIONS) + 1, []).append(vector.text)
    return answers


def plain_vector_reply() -> bytes:
    answers = {number: "\n\n".join(texts) for number, texts in vectors_by_question().items()}
    return make_reply(
        answers,
        sender=f"{HOSTILE_SENDER} <sam.rivera@example.net>",
        questions=QUESTIONS,
        message_id="<vectors-plain@example.net>",
    )


def html_only_reply(answer_html: dict[int, str], message_id: str) -> bytes:
    """An HTML-only reply in Gmail's shape (split quotes, answers between them, no text/plain
    part), sent with an inline signature image and a CV attached: multipart/mixed of
    multipart/related (text/html, image/png) and application/pdf."""
    parts = [
        '<div dir="ltr"><div>Hi, my answers are below.</div><div><br></div></div>',
        (
            '<div class="gmail_quote gmail_quote_container"><div dir="ltr" class="gmail_attr">On Thu, 12 Nov 2026 '
            "at 09:14, The Job-Seeker&#39;s Interview &lt;interview@jobseekers.example&gt; wrote:<br></div>"
        ),
    ]
    quote = (
        '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);'
        'padding-left:1ex">'
    )
    for number, question in enumerate(QUESTIONS, start=1):
        parts.append(f'{quote}<ol start="{number}"><li>{html.escape(question)}</li></ol></blockquote>')
        parts.append(f"<div><br></div>{answer_html.get(number, '')}<div><br></div>")
    parts.append('</div><div><img src="cid:sig-logo@mail.gmail.com" alt="Sam" width="32" height="32"></div>')
    message = EmailMessage()
    message["From"] = f"{HOSTILE_SENDER} <sam.rivera@example.net>"
    message["To"] = "The Job-Seeker's Interview <interview@jobseekers.example>"
    message["Subject"] = "Re: The Job-Seeker's Interview: your questions"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id
    message["In-Reply-To"] = "<questionnaire.1@jobseekers.example>"
    message.set_content("\n".join(parts), subtype="html", cte="quoted-printable")
    message.add_related(b"\x89PNG\r\n\x1a\n" + bytes(64), "image", "png", cid="<sig-logo@mail.gmail.com>")
    message.add_attachment(b"%PDF-1.4\n% a CV\n%%EOF\n", "application", "pdf", filename="CV Sam Rivera.pdf")
    return message.as_bytes()


def typed_vector_reply() -> bytes:
    """The vectors as a person types them into an HTML mail client: escaped by the client."""
    answers = {
        number: "".join(f"<div>{html.escape(text)}</div><div><br></div>" for text in texts)
        for number, texts in vectors_by_question().items()
    }
    return html_only_reply(answers, "<vectors-typed@mail.gmail.com>")


def crafted_vector_reply() -> bytes:
    """The vectors as raw markup inside the reply's HTML: a hand-crafted hostile message."""
    answers = {
        number: "<div>My answer, pasted from a forum:</div>" + "".join(f"<div>{text}</div>" for text in texts)
        for number, texts in vectors_by_question().items()
    }
    return html_only_reply(answers, "<vectors-crafted@mail.gmail.com>")


# Hover every answer, link and list item: handlers that wait for a person must get their chance.
SWEEP = """() => [...document.querySelectorAll("main *")].map((el) => {
  const r = el.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2, r.width * r.height];
}).filter(([, , area]) => area > 0)"""

# Answer paragraphs that hold anything but text and our own "#00012" links (an element a vector became).
NOT_TEXT = """(base) => [...document.querySelectorAll("dd p, ol.interviews li > p:last-child")]
  .filter((p) => [...p.children].some((el) => !(el.matches("a[href]") && el.attributes.length === 1
    && el.children.length === 0 && /^#\\d{5}$/.test(el.textContent)
    && el.href === base + "interviews/" + el.textContent.slice(1) + "/")))
  .map((p) => p.innerHTML.slice(0, 160))"""


def assert_inert(page: Page, watch: Watch, url: str, site_url: str) -> None:
    """Nothing ran, nothing fired, nothing was fetched from elsewhere, the page stayed put, and
    answers are text (but for "#00012" mentions linked to `site_url`'s interview pages)."""
    for x, y, _ in page.evaluate(SWEEP):
        page.mouse.move(x, y)
    page.keyboard.press("Tab")
    page.wait_for_timeout(300)  # a meta refresh of 0 s, a timer, an image error handler
    hits = watch.script_hits(page)
    assert not hits, f"{url} ran, or tried to run or load, something ({len(hits)}):\n" + "\n".join(
        hit[:160] for hit in hits[:40]
    )
    assert not watch.offsite, f"requests left {url} for other hosts:\n" + "\n".join(watch.offsite)
    assert all(request.startswith(watch.origin + "/") for request in watch.requests), watch.requests
    assert page.url == url, "the page navigated away"
    assert page.evaluate(NOT_TEXT, site_url) == [], "an answer paragraph holds markup instead of text"


def answer_texts(page: Page) -> set[str]:
    return {normalised(text) for text in page.eval_on_selector_all("dd p", "ps => ps.map(p => p.textContent)")}


@pytest.mark.parametrize(
    ("kind", "make"),
    [("plain", plain_vector_reply), ("html-typed", typed_vector_reply), ("html-crafted", crafted_vector_reply)],
)
def test_xss_vectors_in_answers_stay_text_on_the_static_site(
    browser: Browser, tmp_path: Path, kind: str, make: Callable[[], bytes]
) -> None:
    with published_site(tmp_path, [make()]) as (_, url):
        page_url = f"{url}interviews/00001/"
        for target in (page_url, url):
            page, watch = browser.open(target, width=DESKTOP, watch=True)
            try:
                assert_inert(page, watch, target, url)
                if target == page_url:
                    assert_vectors_shown(page, kind)
            finally:
                page.close()


def assert_vectors_shown(page: Page, kind: str) -> None:
    """The answers were not silently dropped: each vector is on the page as the text it was
    (scrubbed: a link is the link marker), or, for raw markup, the answer around it is there."""
    shown = answer_texts(page)
    if kind == "html-crafted":
        # Raw markup is markup: html2text keeps only its text, and an unclosed <style> or comment
        # hides the rest of the message from it as it would from a mail client. What is left must
        # be there, starting with each answer's own first line.
        firsts = page.eval_on_selector_all("dl.qa > dd", "dds => dds.map(dd => dd.querySelector('p').textContent)")
        assert len(firsts) >= len(QUESTIONS) // 2 and set(firsts) == {"My answer, pasted from a forum:"}
        return

    # Two quirks that are not escaping, so not compared: answers.html_to_text undoes html2text's
    # markdown escapes, which also eats a backslash a person typed before punctuation; and
    # WordPress's wptexturize prints "--" as an en dash.
    def same(text: str) -> str:
        if kind == "html-typed":
            return text.replace("\\", "")
        return text.replace("\u2013", "--") if kind == "wordpress" else text

    shown = {same(text) for text in shown}
    missing = [
        vector.name
        for vector in VECTORS
        if not all(same(p) in shown for p in expected_paragraphs(vector.text, HOSTILE_SENDER))
    ]
    assert missing == [], f"vectors missing from the page: {missing}"
    body = page.inner_text("main")
    assert "<script>__xss('script')</script>" in body and "[link removed]" in body


def test_feed_of_xss_answers_is_well_formed_atom(tmp_path: Path) -> None:
    with published_site(tmp_path, [plain_vector_reply()]) as (app, _):
        feed = ET.parse(app.settings.blog.path("path") / "feed.xml").getroot()
        [entry] = feed.findall(f"{ATOM}entry")
        assert entry.findtext(f"{ATOM}summary") == VECTORS[0].text


def test_feed_stays_well_formed_when_answers_hold_control_characters(browser: Browser, tmp_path: Path) -> None:
    answers = {
        n: f"Answer {n}, pasted from a terminal: a NUL \x00, a bell \x07 and an escape \x1b[0m."
        for n in range(1, len(QUESTIONS) + 1)
    }
    reply = make_reply(answers, sender="Sam Rivera <sam.rivera@example.net>", questions=QUESTIONS)
    with published_site(tmp_path, [reply]) as (_, url):
        page, _watch = browser.open(f"{url}feed.xml", width=DESKTOP)
        try:  # Chromium shows a malformed XML document as a <parsererror> report
            error = page.evaluate("() => document.querySelector('parsererror')?.textContent")
            assert error is None, error
        finally:
            page.close()


# --- XSS through WordPress ------------------------------------------------------------------------


def test_xss_vectors_in_answers_stay_text_in_a_wordpress_post(browser: Browser, tmp_path: Path) -> None:
    """What WordPress stores and hands back for the post (its kses filtering, which does not
    apply to an administrator's application password, plus our own escaping), which a theme
    would print as is. WordPress here has no theme, so its public pages are empty: the post's
    content.rendered from the REST API is put into a minimal page served locally."""
    wp_url = require_env("MAILFLOW_TEST_WP_URL")
    user, password = require_env("MAILFLOW_TEST_WP_USER"), require_env("MAILFLOW_TEST_WP_APP_PASSWORD")
    slug = f"xss-{uuid.uuid4().hex[:8]}-{{number}}"  # unique, so no other test's post is reused
    api = httpx.Client(base_url=wp_url.rstrip("/") + "/wp-json/wp/v2/", auth=(user, password), timeout=30)
    with (
        api,
        published_site(
            tmp_path / "wp",
            [plain_vector_reply()],
            backend="wordpress",
            url=wp_url,
            username=user,
            application_password=password,
            slug_pattern=slug,
        ) as (app, site_url),
    ):
        with Session(app.engine) as session:
            [publication] = session.exec(select(Publication)).all()
        post_id = publication.remote_id
        try:
            assert publication.state == "published" and post_id, publication.last_error
            post = api.get(f"posts/{post_id}").raise_for_status().json()
            served = tmp_path / "wp-page"
            served.mkdir()
            (served / "index.html").write_text(
                '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                f"<title>{post['title']['rendered']}</title></head><body><main><h1>{post['title']['rendered']}</h1>"
                f"{post['content']['rendered']}</main></body></html>",
                encoding="utf-8",
            )
            with serve_folder(served) as url:
                page, watch = browser.open(url, width=DESKTOP, watch=True)
                try:
                    assert_inert(page, watch, url, site_url)
                    assert_vectors_shown(page, "wordpress")
                finally:
                    page.close()
        finally:
            if post_id:
                api.delete(f"posts/{post_id}", params={"force": "true"})


@pytest.mark.parametrize("backend", ["blogger", "micropub"])
def test_xss_vectors_in_answers_stay_text_in_blogger_and_micropub_posts(
    browser: Browser, tmp_path: Path, backend: str
) -> None:
    """The HTML these publishers send (the same post template) is what the hosted blog prints:
    taken from the local servers that stand in for Blogger and a Micropub endpoint."""
    from fake_blogger import FakeBlogger
    from fake_micropub import GOOD_TOKEN, FakeMicropub

    fake = FakeBlogger() if backend == "blogger" else FakeMicropub()
    with fake:
        if isinstance(fake, FakeBlogger):
            settings = fake.publisher_settings()
        else:
            settings = {"endpoint": fake.endpoint, "token": GOOD_TOKEN, "post_url": fake.base_url + "/{slug}/"}
        with published_site(tmp_path / backend, [plain_vector_reply()], backend=backend, **settings) as (_, site_url):
            [post] = list(fake.posts.values())
        html_content = post["content"] if isinstance(fake, FakeBlogger) else post["properties"]["content"][0]["html"]
    served = tmp_path / f"{backend}-page"
    served.mkdir()
    (served / "index.html").write_text(
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{backend}</title></head>'
        f"<body><main>{html_content}</main></body></html>",
        encoding="utf-8",
    )
    with serve_folder(served) as url:
        page, watch = browser.open(url, width=DESKTOP, watch=True)
        try:
            assert_inert(page, watch, url, site_url)
            assert_vectors_shown(page, backend)
        finally:
            page.close()
