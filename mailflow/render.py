"""Two jinja2 environments: email (a .txt and .html pair per message) and site (pages, feed).

HTML and XML are autoescaped and undefined names fail loudly, so that a typo in a
template is an error in the tests instead of a blank on a page. The first line of
every email's .txt template is its "Subject: ..." line, so the subject is a template too.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from mailflow.errors import ConfigError


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def default_templates_dir() -> Path:
    """The templates of a source checkout, else those installed with the package."""
    for candidate in (
        Path(__file__).resolve().parent.parent / "templates",
        Path(sys.prefix) / "share" / "mailflow" / "templates",
    ):
        if (candidate / "email").is_dir():
            return candidate
    raise ConfigError("mailflow's templates folder is missing; reinstall mailflow or set [mailflow] templates.")


class Renderer:
    """Renders every outgoing email and page from templates/.

    Templates are compiled once and kept until `reload` (each pass calls it), not checked on
    disk at every use: jinja2's default looks at every file a template uses each time, which
    took 3–4% of a backlog's time. A host's edited template shows from the next pass."""

    def __init__(self, templates_dir: Path, globals_: dict[str, object] | None = None) -> None:
        self.templates_dir = templates_dir
        loader = jinja2.FileSystemLoader(str(templates_dir))
        common = {
            "loader": loader, "undefined": jinja2.StrictUndefined, "keep_trailing_newline": True, "auto_reload": False,
        }  # fmt: skip
        self._email = jinja2.Environment(autoescape=jinja2.select_autoescape(["html"]), **common)  # type: ignore[arg-type]
        self._site = jinja2.Environment(autoescape=jinja2.select_autoescape(["html", "xml"]), **common)  # type: ignore[arg-type]
        for env in (self._email, self._site):
            env.globals.update(globals_ or {})
            env.filters["number"] = format_number
        self._site.filters["mentions"] = link_mentions

    def reload(self) -> None:
        """Read the templates afresh when next used."""
        for env in (self._email, self._site):
            if env.cache is not None:
                env.cache.clear()

    def email(self, name: str, **context: object) -> RenderedEmail:
        text = self._email.get_template(f"email/{name}.txt").render(**context)
        first, _, body = text.partition("\n")
        if not first.startswith("Subject:"):
            raise ConfigError(f"templates/email/{name}.txt must start with a 'Subject: ...' line.")
        html = self._email.get_template(f"email/{name}.html").render(**context)
        return RenderedEmail(subject=" ".join(first[len("Subject:") :].split()), text=body.lstrip("\n"), html=html)

    def page(self, name: str, **context: object) -> str:
        return self._site.get_template(f"site/{name}").render(**context)


def format_number(number: int) -> str:
    """Interview numbers are five digits, as the seed post promised: 00001."""
    return f"{number:05d}"


_MENTION = re.compile(r"#(\d{5})\b")


def link_mentions(text: str, base_url: str) -> Markup:
    """Escape `text`, then turn each "#00012" into a link to that interview's page."""
    escaped = str(escape(text))
    return Markup(
        _MENTION.sub(lambda m: f'<a href="{escape(base_url)}interviews/{m.group(1)}/">#{m.group(1)}</a>', escaped)
    )
