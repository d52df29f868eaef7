"""The GitHub releases API, with an on-disk cache: the release source behind `helm-mlops versions`.

``GitHubReleases.fetch("owner/repo")`` reads ``GET {api}/repos/{owner}/{repo}/releases?per_page=100`` and
follows ``Link: rel="next"`` (same host only: the token goes nowhere else). Settings come from the
environment (``GitHubReleases.from_env``): ``GITHUB_API_URL`` (GitHub Enterprise; default GitHub's
public API), ``GITHUB_TOKEN`` or ``GH_TOKEN`` (sent as ``Authorization: Bearer``, never stored, logged
or shown), ``HELM_MLOPS_VERSIONS_TTL`` (seconds, default 3600) and the cache folder of
``generator.paths.cache_dir()``.

The cache holds one JSON file per page URL and token: its name is a hash of the URL and of a hash of
the token, and it keeps only what the listing needs (tag, draft and pre-release flags, publication
time), the page's ETag, its next-page link and when it was fetched. Per page:

- younger than the TTL: used without any request;
- older: a conditional request (``If-None-Match``); 304 reuses the page and restarts its TTL;
- the request fails (network, rate limit: 403/429 with ``x-ratelimit-remaining: 0`` or
  ``retry-after``, any other error status): the cached page however old, with a warning; with no
  cached page, a ``ToolError`` (``generator.versions`` then falls back to its bundled list).

Why not requests-cache: importing it costs about 0.2 s (its backends package imports every optional
backend that is installed, boto3 included), more than the whole 0.3 s a cached `helm-mlops versions`
may take; answering from this cache imports nothing beyond the standard library, and requests only
when a request is due."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from generator import __version__
from generator.errors import ToolError, UserError
from generator.paths import cache_dir
from generator.versions import CACHE, LIVE, STALE_CACHE, Fetched

if TYPE_CHECKING:
    import requests

API_URL_ENV = "GITHUB_API_URL"
DEFAULT_API_URL = "https://api.github.com"
TOKEN_ENVS = ("GITHUB_TOKEN", "GH_TOKEN")
TTL_ENV = "HELM_MLOPS_VERSIONS_TTL"
DEFAULT_TTL = 3600.0
MAX_PAGES = 50  # 5,000 releases
TIMEOUT = (5.0, 20.0)  # connect, read
_KEPT = ("tag_name", "draft", "prerelease", "published_at")


def ttl_from_env() -> float:
    raw = os.environ.get(TTL_ENV, "").strip()
    if not raw:
        return DEFAULT_TTL
    try:
        ttl = float(raw)
    except ValueError:
        ttl = math.nan
    if not (math.isfinite(ttl) and ttl >= 0):
        raise UserError(
            f"{raw!r} is not a number of seconds", field=TTL_ENV, hint="e.g. 600, or unset it for an hour"
        )
    return ttl


def api_url_from_env() -> str:
    url = (os.environ.get(API_URL_ENV) or DEFAULT_API_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(
            f"{url!r} is not an http(s) URL",
            field=API_URL_ENV,
            hint="e.g. https://github.example.com/api/v3 for GitHub Enterprise, or unset it",
        )
    return url


def token_from_env() -> str | None:
    for name in TOKEN_ENVS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


@dataclass(frozen=True)
class _Page:
    url: str
    releases: list[dict[str, Any]]
    next_url: str | None
    etag: str | None
    fetched_at: float


class _Failure(Exception):
    """A request that gave no usable answer; the message says why (never with the token)."""


class GitHubReleases:
    """A release source (``generator.versions.ReleaseSource``) reading the GitHub API through the cache."""

    def __init__(self, api_url: str, token: str | None, cache_root: Path, ttl: float) -> None:
        self.api_url = api_url.rstrip("/")
        self.ttl = ttl
        self.cache_root = cache_root / "github-releases"
        self._token = token
        # Cache entries are keyed by a hash of the token, so one token's answers never serve another.
        self._auth_key = "anonymous" if not token else hashlib.sha256(token.encode()).hexdigest()
        self._cache_warning: str | None = None

    def __repr__(self) -> str:
        return f"GitHubReleases({self.api_url!r}, token={'set' if self._token else 'none'}, ttl={self.ttl})"

    @classmethod
    def from_env(cls, ttl: float | None = None) -> GitHubReleases:
        return cls(api_url_from_env(), token_from_env(), cache_dir(), ttl_from_env() if ttl is None else ttl)

    def fetch(self, repo: str) -> Fetched:
        url: str | None = f"{self.api_url}/repos/{repo}/releases?per_page=100"
        releases: list[dict[str, Any]] = []
        warnings: list[str] = []
        seen: set[str] = set()
        live = False
        failure: str | None = None  # once a request fails, the rest comes from the cache
        oldest_stale: float | None = None
        session: requests.Session | None = None
        try:
            while url is not None and url not in seen:
                if len(seen) == MAX_PAGES:
                    warnings.append(f"{repo}: stopped after {MAX_PAGES} pages of releases")
                    break
                seen.add(url)
                cached = self._read(url)
                page: _Page | None = cached if cached is not None and self._fresh(cached) else None
                if page is None and failure is None:
                    if session is None:
                        import requests

                        session = requests.Session()
                    try:
                        page, changed = self._request(session, url, cached)
                        live = live or changed
                    except _Failure as exc:
                        failure = str(exc)
                if page is None:
                    if cached is None:
                        raise ToolError(f"cannot list {repo} releases: {failure}; and nothing is cached")
                    page = cached
                    oldest_stale = min(oldest_stale or page.fetched_at, page.fetched_at)
                releases += page.releases
                url = page.next_url
                if url is not None and not self._same_origin(url):
                    warnings.append(f"{repo}: not following a next-page link to another host: {url}")
                    url = None
        finally:
            if session is not None:
                session.close()
        if self._cache_warning:
            warnings.append(self._cache_warning)
        if failure is not None and oldest_stale is not None:
            warnings.insert(
                0,
                f"{failure}; using the {STALE_CACHE} of {repo} releases (fetched {_age(oldest_stale)} ago)",
            )
            return Fetched(releases, STALE_CACHE, warnings)
        return Fetched(releases, LIVE if live else CACHE, warnings)

    # -- requests

    def _headers(self, cached: _Page | None) -> dict[str, str]:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": f"helm-mlops/{__version__}",
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        return headers

    def _request(self, session: requests.Session, url: str, cached: _Page | None) -> tuple[_Page, bool]:
        """The page, and whether it changed (False: a 304 confirmed the cached one)."""
        import requests

        try:
            response = session.get(url, headers=self._headers(cached), timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise _Failure(f"cannot reach {self.api_url} ({_short(exc)})") from None
        with response:
            status = response.status_code
            if status == 304 and cached is not None:
                page = _Page(cached.url, cached.releases, cached.next_url, cached.etag, time.time())
                self._write(page)
                return page, False
            if status == 200:
                try:
                    body = response.json()
                except ValueError:
                    body = None
                if not isinstance(body, list):
                    raise _Failure(f"{url} did not answer with a list of releases")
                releases = [{k: r.get(k) for k in _KEPT} for r in body if isinstance(r, dict)]
                next_url = response.links.get("next", {}).get("url")
                page = _Page(url, releases, next_url, response.headers.get("ETag"), time.time())
                self._write(page)
                return page, True
            raise _Failure(self._explain(response))

    def _explain(self, response: requests.Response) -> str:
        status, headers = response.status_code, response.headers
        if status in (403, 429) and (headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers):
            when = ""
            if headers.get("retry-after", "").strip().isdigit():
                when = f", retry after {int(headers['retry-after'])} s"
            elif headers.get("x-ratelimit-reset", "").strip().isdigit():
                reset = datetime.fromtimestamp(int(headers["x-ratelimit-reset"]), UTC)
                when = f", resets at {reset:%H:%M} UTC"
            advice = "" if self._token else " (set GITHUB_TOKEN for a higher limit)"
            return f"GitHub API rate limit reached (HTTP {status}{when}){advice}"
        if status == 401:
            return "GitHub API refused the token (HTTP 401): check GITHUB_TOKEN / GH_TOKEN"
        return f"GitHub API answered HTTP {status} for {response.url}"

    def _same_origin(self, url: str) -> bool:
        mine, theirs = urlsplit(self.api_url), urlsplit(url)
        return (mine.scheme, mine.netloc) == (theirs.scheme, theirs.netloc)

    # -- cache

    def _fresh(self, page: _Page) -> bool:
        age = time.time() - page.fetched_at
        return -60 < age < self.ttl  # a page from the future (clock change) is not fresh

    def _path(self, url: str) -> Path:
        return self.cache_root / (
            hashlib.sha256(f"{self._auth_key}\n{url}".encode()).hexdigest()[:40] + ".json"
        )

    def _read(self, url: str) -> _Page | None:
        try:
            data = json.loads(self._path(url).read_text())
            page = _Page(
                url=data["url"],
                releases=data["releases"],
                next_url=data["next"],
                etag=data["etag"],
                fetched_at=float(data["fetched_at"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: as if never fetched
        if page.url != url or not isinstance(page.releases, list):
            return None
        return page

    def _write(self, page: _Page) -> None:
        data = {
            "url": page.url,
            "etag": page.etag,
            "next": page.next_url,
            "fetched_at": page.fetched_at,
            "releases": page.releases,
        }
        path = self._path(page.url)
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
                tmp = f.name
                json.dump(data, f)
            os.replace(tmp, path)  # readers see the old page or the new one, never half of one
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            self._cache_warning = f"cannot write the cache in {self.cache_root}: {exc.strerror or exc}"


def _short(exc: Exception) -> str:
    import requests

    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


def _age(since: float) -> str:
    seconds = max(0, int(time.time() - since))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
