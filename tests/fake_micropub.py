"""A local Micropub endpoint for tests, following the W3C Recommendation of 23 May 2017
(https://www.w3.org/TR/micropub/); the section each behaviour comes from is named where it is built.

It keeps posts in memory by URL, honours `mp-slug` (so the post lands at BASE/<slug>/) and
`post-status` (a widely implemented extension, https://indieweb.org/Micropub-extensions).
"""

from __future__ import annotations

from typing import Any

from fake_blogger import LocalServer, Reply, Request

GOOD_TOKEN = "micropub-token-create-update-delete"
READ_ONLY_TOKEN = "micropub-token-read-only"


def micropub_error(status: int, error: str, description: str) -> Reply:
    # "Error Response": a JSON body with "error" and an optional "error_description".
    return Reply(status, {"error": error, "error_description": description})


# "Error Response" lists: invalid_request (400), unauthorized (401, no token),
# insufficient_scope (401, the token's scope is too narrow), forbidden (403).
UNAUTHORIZED = micropub_error(401, "unauthorized", "No access token was provided in the request.")
FORBIDDEN = micropub_error(403, "forbidden", "The authenticated user does not have permission to perform this request.")


class FakeMicropub(LocalServer):
    def __init__(self, *, accept_async: bool = False) -> None:
        super().__init__()
        self.posts: dict[str, dict[str, Any]] = {}
        self.accept_async = accept_async  # answer creates with 202 Accepted instead of 201 Created
        self.created = 0

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/micropub"

    def post_url(self, slug: str) -> str:
        return f"{self.base_url}/{slug}/"

    def handle(self, request: Request) -> Reply:
        if request.path != "/micropub":
            return Reply(404)
        # "Authentication": a Bearer token in the Authorization header, or access_token in the body.
        form = request.form() if not request.is_json and request.method == "POST" else {}
        token = request.headers.get("authorization", "").removeprefix("Bearer ") or form.get("access_token", [""])[0]
        if not token:
            return UNAUTHORIZED
        if token not in (GOOD_TOKEN, READ_ONLY_TOKEN):
            return FORBIDDEN
        if request.method == "GET":
            return self._query(request)
        payload = request.json() if request.is_json else form
        action = payload.get("action")
        action = action[0] if isinstance(action, list) else action
        if token == READ_ONLY_TOKEN:
            return micropub_error(401, "insufficient_scope", f"This token has no {action or 'create'} scope.")
        if action is None:
            return self._create(request, payload)
        url = payload.get("url")
        url = url[0] if isinstance(url, list) else url
        post = self.posts.get(url or "")
        if post is None:
            return micropub_error(400, "invalid_request", "There is no post at that URL.")
        return self._act(str(action), post, payload)

    def _query(self, request: Request) -> Reply:
        # "Querying": q=config, and q=source&url=... answering the post's properties as mf2 JSON.
        q = request.query.get("q", [""])[0]
        if q == "config":
            return Reply(200, {})
        if q == "source":
            post = self.posts.get(request.query.get("url", [""])[0])
            if post is None or post["deleted"]:
                return micropub_error(400, "invalid_request", "There is no post at that URL.")
            return Reply(200, {"type": ["h-entry"], "properties": post["properties"]})
        return micropub_error(400, "invalid_request", f"Unknown query {q!r}.")

    def _create(self, request: Request, payload: dict[str, Any]) -> Reply:
        # "Create": form-encoded h=entry with properties as fields (arrays as name[]),
        # or JSON {"type": ["h-entry"], "properties": {...}}; mp-* are commands, not properties.
        if request.is_json:
            if payload.get("type") != ["h-entry"]:
                return micropub_error(400, "invalid_request", "Only h-entry is supported.")
            properties = {key: list(values) for key, values in payload.get("properties", {}).items()}
        else:
            if payload.get("h") != ["entry"]:
                return micropub_error(400, "invalid_request", "Only h=entry is supported.")
            properties = {
                key.removesuffix("[]"): values for key, values in payload.items() if key not in ("h", "access_token")
            }
        slug = (properties.pop("mp-slug", None) or [f"post-{len(self.posts) + 1}"])[0]
        url = self.post_url(slug)
        if url in self.posts:
            url = self.post_url(f"{slug}-{len(self.posts) + 1}")  # as servers do: never overwrite
        properties.setdefault("post-status", ["published"])
        self.posts[url] = {"properties": properties, "deleted": False, "form": not request.is_json}
        self.created += 1
        # "Response": 201 Created with Location; or 202 Accepted with Location when it is done later.
        return Reply(202 if self.accept_async else 201, headers={"Location": url})

    def _act(self, action: str, post: dict[str, Any], payload: dict[str, Any]) -> Reply:
        if action == "update":
            # "Update": JSON only; replace/add/delete; 200, 201 (URL changed) or 204 No Content.
            if not isinstance(payload, dict) or not isinstance(payload.get("replace", {}), dict):
                return micropub_error(400, "invalid_request", "Updates must be JSON.")
            if post["deleted"]:
                return micropub_error(400, "invalid_request", "That post is deleted.")
            post["properties"].update(payload.get("replace", {}))
            for key, values in payload.get("add", {}).items():
                post["properties"].setdefault(key, []).extend(values)
            return Reply(204)
        if action == "delete":  # "Delete": form-encoded or JSON action=delete&url=...
            post["deleted"] = True
            return Reply(204)
        if action == "undelete":
            post["deleted"] = False
            return Reply(204)
        return micropub_error(400, "invalid_request", f"Unknown action {action!r}.")

    def live(self, slug_part: str) -> list[str]:
        """URLs of posts containing `slug_part` that are published and not deleted."""
        return [
            url
            for url, post in self.posts.items()
            if slug_part in url and not post["deleted"] and post["properties"].get("post-status") == ["published"]
        ]
