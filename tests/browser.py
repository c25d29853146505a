"""Real headless Chromium for the tests: serve a folder on 127.0.0.1, open pages, watch them.

Chromium is Debian's (MAILFLOW_TEST_CHROMIUM), driven by the `playwright` package from
PyPI, whose wheel carries its own driver: `playwright install` (a browser download) is
never needed. Each Browser gets a new, empty profile folder.

A watched page (`Browser.open(..., watch=True)`) has a hook installed before any page
script runs: alert/confirm/prompt/print and a global `__xss()` are traps, every request is
recorded and any request off the page's own origin is refused. `serve_folder`'s server also
sends a report-only Content-Security-Policy forbidding all script and remote loads, so that
any script or event handler that even starts to run, or anything that tries to load from
elsewhere, is reported as a `securitypolicyviolation` (report-only blocks nothing: a broken
page still shows the attack in the traps). The site needs no script, so on its pages any
report at all is a finding.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Dialog, Page, Playwright, Request, Route, sync_playwright
from playwright.sync_api import Error as PlaywrightError

CHROMIUM_ARGS = (
    "--no-sandbox",  # we are root here, and the sandbox needs user namespaces
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no update checks, field trials or safe-browsing lists
    "--disable-component-update",
    "--disable-sync",
)

TIMEOUT_MS = 10_000  # a local page loads in milliseconds; fail fast rather than after Playwright's 30 s

# Report-only: nothing is blocked, every attempt is reported to the page as an event. A script
# source list holding only 'report-sample' allows no script at all and quotes the first 40
# characters of each one in the report, which names the vector.
WATCH_CSP = (
    "default-src 'self'; script-src 'report-sample'; script-src-attr 'report-sample'; object-src 'none'; "
    "base-uri 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; frame-src 'none'; form-action 'none'"
)

WATCH_SCRIPT = """
(() => {
  const hits = [];
  Object.defineProperty(window, "__mailflowHits", { value: hits });
  const trap = (name) => function (...args) { hits.push(name + "(" + args.map(String).join(", ") + ")"); };
  for (const name of ["alert", "confirm", "prompt", "print"]) { window[name] = trap(name); }
  Object.defineProperty(window, "__xss", { value: trap("__xss") });
  document.addEventListener("securitypolicyviolation", (event) => {
    hits.push("csp " + event.violatedDirective + " " + (event.blockedURI || "") + " " + (event.sample || ""));
  }, true);
})();
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder; adds the report-only policy; logs nothing (pytest shows failures)."""

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy-Report-Only", WATCH_CSP)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Watch:
    """What a watched page did: script that ran, requests it made, requests refused."""

    origin: str
    requests: list[str] = field(default_factory=list)
    offsite: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # dialogs, page errors, websockets

    def script_hits(self, page: Page) -> list[str]:
        """Trap calls and policy reports from every frame of the page, plus page errors."""
        hits = list(self.events)
        for frame in page.frames:
            try:
                hits += frame.evaluate("() => Array.from(window.__mailflowHits || [])")
            except PlaywrightError as exc:  # a frame navigated away or detached: say so, do not hide it
                hits.append(f"frame {frame.url!r} could not be read: {exc}")
        return hits

    def route(self, route: Route, request: Request) -> None:
        """Let the page's own origin through; refuse and record anything else."""
        if origin_of(request.url) == self.origin:
            route.continue_()
        else:
            self.offsite.append(request.url)
            route.abort("blockedbyclient")


class Browser:
    """One headless Chromium with a fresh profile; pages are opened at a chosen width."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.executable = executable
        self.profile = profile
        self._playwright: Playwright | None = None
        self._context: BrowserContext | None = None

    def __enter__(self) -> Self:
        self.profile.mkdir(parents=True, exist_ok=True)
        self._playwright = sync_playwright().start()
        try:
            self._context = self._playwright.chromium.launch_persistent_context(
                str(self.profile),
                executable_path=self.executable,
                headless=True,
                args=list(CHROMIUM_ARGS),
                viewport={"width": 1280, "height": 800},
            )
        except BaseException:  # a browser that would not start: stop the driver, then say why
            self._playwright.stop()
            raise
        self._context.set_default_timeout(TIMEOUT_MS)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self._context is not None:
            self._context.close()
        if self._playwright is not None:
            self._playwright.stop()

    def open(self, url: str, *, width: int, height: int = 800, watch: bool = False) -> tuple[Page, Watch]:
        """Open `url` at `width` CSS pixels and wait until it has loaded; with `watch`, instrumented."""
        assert self._context is not None, "use Browser as a context manager"
        page = self._context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        recorder = Watch(origin_of(url))
        page.on("request", lambda request: recorder.requests.append(request.url))
        if watch:
            page.add_init_script(WATCH_SCRIPT)
            page.route("**/*", recorder.route)
            page.on("dialog", lambda dialog: _dismiss(dialog, recorder))
            page.on("pageerror", lambda error: recorder.events.append(f"page error: {error}"))
            page.on("websocket", lambda socket: recorder.events.append(f"websocket: {socket.url}"))
        page.goto(url, wait_until="load")
        return page, recorder


def _dismiss(dialog: Dialog, recorder: Watch) -> None:
    recorder.events.append(f"dialog {dialog.type}: {dialog.message}")
    dialog.dismiss()


def save_screenshot(page: Page, folders: list[Path], name: str) -> list[Path]:
    """A full-page PNG of `page` as `name`.png in each folder; returns the files written."""
    image = page.screenshot(full_page=True)
    written = []
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.png").write_bytes(image)
        written.append(folder / f"{name}.png")
    return written
