"""Refresh generator/data/versions.json, the release list `helm-mlops versions` falls back on when
neither the GitHub API nor its cache answers (and that the wheel ships).

    python hack/bundle-versions.py            # every project, from the GitHub API
    python hack/bundle-versions.py --check    # exit 1 when the file is not in the format written here

It reads the API exactly as `helm-mlops versions` does (GITHUB_API_URL, GITHUB_TOKEN/GH_TOKEN, the
cache), refuses to write anything that did not come from the API (a stale cache or the bundled list
itself), and keeps the newest stable releases of each project, one per line."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generator.github import GitHubReleases  # noqa: E402
from generator.versions import CACHE, LIVE, PROJECTS, from_releases  # noqa: E402

OUT = REPO / "generator" / "data" / "versions.json"
KEEP = 30  # newest stable releases per project
NOTE = (
    "Fallback of `helm-mlops versions` when neither the GitHub API nor the cache answers. "
    "Refresh it with hack/bundle-versions.py."
)


def render(generated_at: str, source: str, projects: dict[str, list[dict[str, Any]]]) -> str:
    """The file, one release per line so a refresh diffs release by release."""
    lines = [
        "{",
        f'  "generated_at": {json.dumps(generated_at)},',
        f'  "source": {json.dumps(source)},',
        f'  "note": {json.dumps(NOTE)},',
        '  "projects": {',
    ]
    for i, (name, releases) in enumerate(projects.items()):
        lines.append(f"    {json.dumps(name)}: [")
        lines += [
            f"      {json.dumps(r)}{',' if j < len(releases) - 1 else ''}" for j, r in enumerate(releases)
        ]
        lines.append("    ]" + ("," if i < len(projects) - 1 else ""))
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def fetch_all() -> dict[str, list[dict[str, Any]]]:
    source = GitHubReleases.from_env(ttl=0)  # always ask (a 304 is free), never trust an old page
    out = {}
    for name, spec in PROJECTS.items():
        fetched = source.fetch(spec.repo)
        if fetched.source not in (LIVE, CACHE):
            raise SystemExit(f"{name}: the API did not answer ({'; '.join(fetched.warnings)}): not writing")
        stable = from_releases(name, fetched.releases, include_pre=False)[:KEEP]
        by_tag = {r["tag_name"]: r for r in fetched.releases}
        out[name] = [
            {
                "tag_name": v.tag,
                "draft": False,
                "prerelease": False,
                "published_at": by_tag[v.tag].get("published_at"),
            }
            for v in stable
        ]
        print(f"{name}: {len(stable)} releases, newest {stable[0].version if stable else '-'}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only check the file's format")
    args = parser.parse_args()
    if args.check:
        data = json.loads(OUT.read_text())
        if render(data["generated_at"], data["source"], data["projects"]) != OUT.read_text():
            print(f"{OUT} is not in the format hack/bundle-versions.py writes", file=sys.stderr)
            return 1
        missing = sorted(set(PROJECTS) - set(data["projects"]))
        if missing:
            print(f"{OUT} lacks {', '.join(missing)}", file=sys.stderr)
            return 1
        return 0
    projects = fetch_all()
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    OUT.write_text(render(now, "GitHub releases API", projects))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
