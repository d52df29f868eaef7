"""A fake GitHub REST API on 127.0.0.1 that speaks the releases protocol the real one does:
`GET {prefix}/repos/{owner}/{repo}/releases?per_page=N&page=P`, `Link` headers (next, last, first,
prev), ETags with `If-None-Match` -> 304, and on demand the rate-limit answers (403 with
`x-ratelimit-remaining: 0`, 429 with `retry-after`) or a server error. Every request is recorded
(path, headers, the status answered) so tests can count them and read what was sent."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]  # lower-case names
    status: int


def release(tag: str, day: int, *, draft: bool = False, prerelease: bool = False) -> dict[str, Any]:
    """A release object shaped like GitHub's (the fields the API returns that matter, and a body)."""
    return {
        "id": int(hashlib.sha256(tag.encode()).hexdigest()[:8], 16),
        "tag_name": tag,
        "name": tag,
        "draft": draft,
        "prerelease": prerelease,
        "created_at": f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T10:00:00Z",
        "published_at": None if draft else f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T12:00:00Z",
        "body": f"Release notes of {tag}.",
        "assets": [],
    }


@dataclass
class FakeGitHub:
    releases: dict[str, list[dict[str, Any]]]  # "owner/repo" -> releases, newest first as GitHub sends
    max_per_page: int = 100  # the server's page size cap (small, to get many pages from a few releases)
    prefix: str = ""  # e.g. "/api/v3", as GitHub Enterprise serves it
    mode: str = "ok"  # ok | rate-limit-403 | rate-limit-429 | error-500
    requests: list[Seen] = field(default_factory=list)
    url: str = ""
    next_link_host: str | None = None  # send next links to another host (must not be followed)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, since: int = 0) -> list[Seen]:
        with self._lock:
            return list(self.requests[since:])

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def answer(
        self, path: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if self.mode == "rate-limit-403":
            reset = str(int(time.time()) + 1800)
            limited = {
                "message": "API rate limit exceeded for 127.0.0.1.",
                "documentation_url": "https://docs",
            }
            return (
                403,
                {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
                json.dumps(limited).encode(),
            )
        if self.mode == "rate-limit-429":
            return 429, {"retry-after": "60"}, b'{"message": "You have exceeded a secondary rate limit."}'
        if self.mode == "error-500":
            return 500, {}, b'{"message": "Server Error"}'
        parts = path.removeprefix(self.prefix).strip("/").split("/")
        if len(parts) != 4 or parts[0] != "repos" or parts[3] != "releases":
            return 404, {}, b'{"message": "Not Found"}'
        repo = f"{parts[1]}/{parts[2]}"
        if repo not in self.releases:
            return 404, {}, b'{"message": "Not Found"}'
        per_page = min(int(query.get("per_page", ["30"])[0]), self.max_per_page)
        page = int(query.get("page", ["1"])[0])
        items = self.releases[repo]
        last = max(1, -(-len(items) // per_page))
        body = json.dumps(items[(page - 1) * per_page : page * per_page]).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        out = {
            "ETag": etag,
            "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
            "Cache-Control": "private, max-age=60, s-maxage=60",
            "x-ratelimit-limit": "60",
            "x-ratelimit-remaining": "59",
        }
        base = f"{self.next_link_host or self.url}{self.prefix}/repos/{repo}/releases?per_page={per_page}"
        links = []
        if page < last:
            links += [f'<{base}&page={page + 1}>; rel="next"', f'<{base}&page={last}>; rel="last"']
        if page > 1:
            links += [f'<{base}&page={page - 1}>; rel="prev"', f'<{base}&page=1>; rel="first"']
        if links:
            out["Link"] = ", ".join(links)
        if headers.get("if-none-match") == etag:
            return 304, out, b""
        return 200, out, body


@contextlib.contextmanager
def fake_github(releases: dict[str, list[dict[str, Any]]], **kwargs: Any) -> Iterator[FakeGitHub]:
    """The fake API on a random port of 127.0.0.1 (its base URL, with the prefix, is `.url + .prefix`)."""
    fake = FakeGitHub(releases, **kwargs)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            split = urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = fake.answer(split.path, parse_qs(split.query), headers)
            fake._record(Seen(self.path, headers, status))
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
