"""The real WordPress started by scripts/test-services, as a pytest fixture, and a transport
that loses answers on purpose.

The coordinates come from the environment (MAILFLOW_TEST_WP_*) or, when they are not
exported, from var/services/env, which the services script writes. Without them the tests
are skipped with the reason, except under CI=true, where a missing WordPress is a failure.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from service_env import service_env, unavailable

KEYS = ("MAILFLOW_TEST_WP_URL", "MAILFLOW_TEST_WP_USER", "MAILFLOW_TEST_WP_APP_PASSWORD")


@dataclass(frozen=True)
class WordPressSite:
    url: str
    user: str
    app_password: str

    @property
    def api(self) -> str:
        return self.url + "wp-json/wp/v2/"

    def admin(self) -> httpx.Client:
        """A client logged in as the admin, for looking behind the publisher's back."""
        return httpx.Client(auth=(self.user, self.app_password), timeout=10)


_verdict: list[str] = []  # why WordPress was found missing, once per session


def _site() -> WordPressSite | None:
    values = service_env()
    if any(not values.get(key) for key in KEYS):
        return None
    url = values["MAILFLOW_TEST_WP_URL"]
    return WordPressSite(
        url if url.endswith("/") else url + "/",
        values["MAILFLOW_TEST_WP_USER"],
        values["MAILFLOW_TEST_WP_APP_PASSWORD"],
    )


@pytest.fixture
def wordpress() -> WordPressSite:
    """Read afresh for each test and checked by logging in: every `scripts/test-services start`
    reinstalls WordPress with a new application password, and another session may run it."""
    if _verdict:  # gave up once in this session: do not wait again for every test
        unavailable(_verdict[0])
    problem = "MAILFLOW_TEST_WP_URL, _USER and _APP_PASSWORD are not set"
    deadline = time.monotonic() + 10
    while True:
        site = _site()
        if site is not None:
            try:
                with site.admin() as admin:
                    response = admin.get(site.api + "users/me")
                if response.status_code == 200:
                    return site
                problem = f"{site.url} refused the application password (HTTP {response.status_code})"
            except httpx.HTTPError as exc:
                problem = f"no WordPress answering at {site.url} ({exc})"
        if time.monotonic() > deadline:
            _verdict.append(problem)
            unavailable(problem)
        time.sleep(1)


@dataclass
class LosingTransport(httpx.BaseTransport):
    """Forwards every request to the real server; for the ones marked with `lose_next`, the
    server does the work but the answer is thrown away and the client sees a read timeout."""

    inner: httpx.BaseTransport = field(default_factory=httpx.HTTPTransport)
    pending: list[tuple[str, re.Pattern[str]]] = field(default_factory=list)
    lost: int = 0

    def lose_next(self, method: str, path: str) -> None:
        self.pending.append((method, re.compile(path)))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        for rule in self.pending:
            method, path = rule
            if request.method == method and path.search(request.url.path + "?" + request.url.query.decode()):
                self.pending.remove(rule)
                response.read()
                response.close()
                self.lost += 1
                raise httpx.ReadTimeout("the answer was lost (test)", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def losing_client() -> Iterator[tuple[httpx.Client, LosingTransport]]:
    transport = LosingTransport()
    with httpx.Client(transport=transport, timeout=10) as client:
        yield client, transport
