"""A local stand-in for Blogger API v3 and Google's OAuth 2.0 token endpoint, for tests.

No Google service can be reached from here, so this server answers the requests
BloggerPublisher makes with the shapes Google documents, each cited where it is built:

- Posts resource and methods (list, get, insert, update, publish, revert, delete):
  https://developers.google.com/blogger/docs/3.0/reference/posts
  (.../posts/list, .../posts/insert, .../posts/publish, .../posts/revert, .../posts/delete)
- Refreshing an access token: https://developers.google.com/identity/protocols/oauth2/web-server#offline
  ("Refreshing an access token (offline access)"), errors per RFC 6749 §5.2.
- Error bodies: Google's "Standard Error Responses" for the global domain
  (e.g. https://developers.google.com/civic-information/docs/v2/standard_errors) and the
  error model with code/message/status (https://cloud.google.com/apis/design/errors).

`LocalServer` (also used by fake_micropub.py) runs a handler in a thread and can be told to
answer the next matching request with an error, or to do the work and then cut the
connection without answering: the "lost response" that exactly-once is about.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

CUT = 0  # a fault status meaning: do the work, then close the connection without a response


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())

    @property
    def is_json(self) -> bool:
        return self.headers.get("content-type", "").startswith("application/json")


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    reply: Reply | None  # None: cut the connection after doing the work


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = Request(
            self.command, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}, body
        )
        fake = self.server.fake
        fake.requests.append(request)
        fault = fake.take_fault(request)
        if fault is not None and fault.reply is not None:
            return self._send(fault.reply)
        with fake.lock:
            reply = fake.handle(request)
        if fault is not None:  # the work is done; the answer is lost on the way
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(reply)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _send(self, reply: Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: LocalServer


class LocalServer:
    """An HTTP server on 127.0.0.1 in a thread; subclasses implement `handle`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, method: str, path: str, reply: Reply | None) -> None:
        """Answer the next `method` request whose path matches the regex `path` with `reply`
        instead of doing it; with reply=None, do it and then cut the connection."""
        self.faults.append(Fault(method, re.compile(path), reply))

    def take_fault(self, request: Request) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == request.method and fault.path.search(request.path):
                    self.faults.remove(fault)
                    return fault
        return None

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError


def google_error(code: int, status: str, reason: str, message: str) -> Reply:
    """The JSON error body of a Google API (global domain): {"error": {"code", "message",
    "errors": [{"domain", "reason", "message"}], "status"}} (see the module docstring)."""
    error = {
        "code": code,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
        "status": status,
    }
    headers = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'} if code == 401 else {}
    return Reply(code, {"error": error}, headers)


# The errors tests ask for, as Google sends them.
EXPIRED = google_error(
    401,
    "UNAUTHENTICATED",
    "authError",
    "Request had invalid authentication credentials. "
    "Expected OAuth 2 access token, login cookie or other valid authentication credential.",
)
FORBIDDEN = google_error(
    403, "PERMISSION_DENIED", "forbidden", "We're sorry, but you don't have permission to access this resource."
)
NOT_FOUND = google_error(404, "NOT_FOUND", "notFound", "Not Found")
SERVER_ERROR = google_error(500, "INTERNAL", "backendError", "Backend Error")


def rate_limited(seconds: int) -> Reply:
    reply = google_error(429, "RESOURCE_EXHAUSTED", "rateLimitExceeded", "Rate Limit Exceeded")
    reply.headers["Retry-After"] = str(seconds)
    return reply


class FakeBlogger(LocalServer):
    """Blogger API v3 under /blogger/v3 and the token endpoint at /token, for one blog."""

    CLIENT_ID = "123-fake.apps.googleusercontent.com"
    CLIENT_SECRET = "fake-client-secret"
    REFRESH_TOKEN = "1//fake-refresh-token"
    BLOG_ID = "4242424242424242424"

    def __init__(self) -> None:
        super().__init__()
        self.posts: dict[str, dict[str, Any]] = {}
        self.valid_tokens: set[str] = set()
        self.token_requests = 0
        self.forbidden = False
        self._ids = count(7_000_000_000_000_000_001)

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/blogger/v3"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    def publisher_settings(self) -> dict[str, str]:
        """[blog] keys that point the Blogger publisher at this server."""
        return {
            "blog_id": self.BLOG_ID,
            "client_id": self.CLIENT_ID,
            "client_secret": self.CLIENT_SECRET,
            "refresh_token": self.REFRESH_TOKEN,
            "token_url": self.token_url,
            "api_url": self.api_url,
        }

    def expire_tokens(self) -> None:
        """Every access token handed out so far stops working, as after its expires_in."""
        self.valid_tokens.clear()

    def live_posts(self, label: str) -> list[dict[str, Any]]:
        return [post for post in self.posts.values() if label in post["labels"] and post["status"] == "LIVE"]

    def posts_with_label(self, label: str) -> list[dict[str, Any]]:
        return [post for post in self.posts.values() if label in post["labels"] and post["status"] != "SOFT_TRASHED"]

    def handle(self, request: Request) -> Reply:
        if request.path == "/token":
            return self._token(request)
        prefix = f"/blogger/v3/blogs/{self.BLOG_ID}/posts"
        if not request.path.startswith("/blogger/v3/"):
            return NOT_FOUND
        authorization = request.headers.get("authorization", "")
        if authorization.removeprefix("Bearer ") not in self.valid_tokens:
            return EXPIRED
        if request.path == f"/blogger/v3/blogs/{self.BLOG_ID}" and request.method == "GET":
            # blogs.get: https://developers.google.com/blogger/docs/3.0/reference/blogs/get
            return Reply(
                200,
                {
                    "kind": "blogger#blog",
                    "id": self.BLOG_ID,
                    "name": "Fake Job-Seekers",
                    "url": "https://fake-jobseekers.blogspot.com/",
                },
            )
        if not request.path.startswith(prefix):
            return NOT_FOUND  # another blog id
        if self.forbidden:
            return FORBIDDEN
        rest = request.path[len(prefix) :].strip("/").split("/")
        if rest == [""]:
            return self._list(request) if request.method == "GET" else self._insert(request)
        post = self.posts.get(rest[0])
        if post is None:
            return NOT_FOUND
        return self._on_post(request, post, rest[1] if len(rest) > 1 else "")

    def _token(self, request: Request) -> Reply:
        # Refreshing an access token: POST form grant_type=refresh_token, client_id, client_secret,
        # refresh_token -> {"access_token", "expires_in", "scope", "token_type": "Bearer"}.
        self.token_requests += 1
        form = {key: values[0] for key, values in request.form().items()}
        if form.get("client_id") != self.CLIENT_ID or form.get("client_secret") != self.CLIENT_SECRET:
            return Reply(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.REFRESH_TOKEN:
            return Reply(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
        token = f"ya29.fake-{self.token_requests}"
        self.valid_tokens.add(token)
        return Reply(
            200,
            {
                "access_token": token,
                "expires_in": 3599,
                "scope": "https://www.googleapis.com/auth/blogger",
                "token_type": "Bearer",
            },
        )

    def _list(self, request: Request) -> Reply:
        # posts.list: labels (comma-separated), status (repeated; default live), fetchBodies.
        wanted = {label.strip() for label in request.query.get("labels", [""])[0].split(",") if label.strip()}
        statuses = {status.upper() for status in request.query.get("status", ["live"])}
        items = [
            self._view(post, bodies=request.query.get("fetchBodies", ["true"])[0] == "true")
            for post in self.posts.values()
            if post["status"] in statuses and (not wanted or wanted & set(post["labels"]))
        ]
        listing: dict[str, Any] = {"kind": "blogger#postList"}
        if items:  # Google leaves "items" out of an empty list
            listing["items"] = items
        return Reply(200, listing)

    def _insert(self, request: Request) -> Reply:
        body = request.json()
        post_id = str(next(self._ids))
        post = {
            "kind": "blogger#post",
            "id": post_id,
            "blog": {"id": self.BLOG_ID},
            "title": body.get("title", ""),
            "content": body.get("content", ""),
            "labels": body.get("labels", []),
            "status": "DRAFT",
            "published": "",
            "updated": "2026-11-27T09:00:00Z",
            "selfLink": f"{self.api_url}/blogs/{self.BLOG_ID}/posts/{post_id}",
            "author": {"id": "1", "displayName": "Host"},
            "replies": {"totalItems": "0"},
        }
        self.posts[post_id] = post
        if request.query.get("isDraft", ["false"])[0] != "true":
            self._go_live(post)
        return Reply(200, self._view(post))

    def _on_post(self, request: Request, post: dict[str, Any], verb: str) -> Reply:
        if request.method == "GET" and not verb:
            return Reply(200, self._view(post))
        if request.method == "PUT" and not verb:  # posts.update: the whole resource
            body = request.json()
            post.update(title=body.get("title", ""), content=body.get("content", ""), labels=body.get("labels", []))
            return Reply(200, self._view(post))
        if request.method == "POST" and verb == "publish":
            self._go_live(post)
            return Reply(200, self._view(post))
        if request.method == "POST" and verb == "revert":
            post["status"] = "DRAFT"
            post.pop("url", None)
            return Reply(200, self._view(post))
        if request.method == "DELETE" and not verb:
            # posts.delete: "Note that only live and scheduled posts can be moved to Trash."
            if request.query.get("useTrash", ["false"])[0] == "true" and post["status"] in ("LIVE", "SCHEDULED"):
                post["status"] = "SOFT_TRASHED"
            else:
                del self.posts[post["id"]]
            return Reply(204)
        return google_error(400, "INVALID_ARGUMENT", "invalid", "Invalid request")

    def _go_live(self, post: dict[str, Any]) -> None:
        post["status"] = "LIVE"
        post["published"] = post["published"] or "2026-11-27T09:00:00Z"
        post["url"] = f"https://fake-jobseekers.blogspot.com/2026/11/{post['id']}.html"

    def _view(self, post: dict[str, Any], bodies: bool = True) -> dict[str, Any]:
        view = dict(post)
        if not bodies:
            view.pop("content")
        return view
