"""Release versions of the projects the charts run, and what the charts make of them.

The API other modules use (the answers validation, the `init` wizard, `helm-mlops versions`):

- ``PROJECTS``: one table of the projects (GitHub repository, image, oldest supported version and why).
- ``list_versions(project, *, include_pre=False, source=None) -> VersionList``: the releases, newest
  first, the latest stable one marked. ``source`` fetches the raw releases (``generator.github``'s
  ``GitHubReleases`` reads the GitHub API with an on-disk cache); when it fails, or without one, the
  list bundled with helm-mlops (``generator/data/versions.json``) stands in and a warning says so.
- ``image_for(project, version) -> str | None``: the image the chart runs for that version (None where
  the image is yours or the operator's, not the chart's).
- ``check_supported(project, version, field) -> str``: the normalised version, or a ``UserError``
  (exit 2) naming ``field`` and the oldest version the chart supports.

Tags are SemVer with or without a leading ``v``; other tags (``nightly``, ``v2.0.0rc1``, ``release-1``)
are ignored. A release is a pre-release when GitHub flags it or its SemVer has a pre-release part.
"Latest" is the highest stable version (not GitHub's most recently published release, which can be a
patch of an older line). This module does no network I/O; it reads only the bundled list."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from generator.errors import ToolError, UserError

if TYPE_CHECKING:
    import semver

# Where the list came from: the four answers a caller can show.
LIVE = "live"
CACHE = "cache"
STALE_CACHE = "stale cache"
BUNDLED = "bundled list"

BUNDLED_FILE_ENV = "HELM_MLOPS_VERSIONS_FILE"  # another fallback list (air-gapped sites keep their own)
RECENT = 10  # how many releases `helm-mlops versions` shows without --all


@dataclass(frozen=True)
class Project:
    name: str
    repo: str  # owner/name on GitHub
    image: str | None  # the chart's image, "{version}" standing for the version; None: not the chart's
    minimum: str  # the oldest version the chart supports
    why: str  # why that minimum (shown in the refusal)


# The oldest supported versions, and why:
# - mlflow 3.9.0: the chart runs `ghcr.io/mlflow/mlflow:v<version>-full`, an image published from MLflow
#   3.9.0 on (charts/mlflow/values.yaml `image.flavor`); the chart also always passes `--allowed-hosts`,
#   an MLflow 3 server option. Older servers need your own image (`image.tag`, `image.driversIncluded`).
# - mlserver 1.7.0: the minor line the chart's default image (`mlserver.image.tag`) and its tests and
#   benchmarks run; the settings.json it writes is checked against no older line.
# - kserve 0.20.0: the chart's InferenceService is validated against the CRDs of KServe 0.20 (the tests'
#   upstream CRDs) and benchmarked with 0.21; older controllers are untested.
# - bentoml 1.0.0: the chart runs your Bento image and needs BentoML 1.0's server (port 3000, /livez and
#   /readyz probes).
# - kubeflow-trainer 2.0.0: the first Kubeflow Trainer with the TrainJob API (trainer.kubeflow.org/v1alpha1)
#   the chart's `distributed.operator=trainjob` creates. The repository's 1.x releases are the Training
#   Operator, whose PyTorchJob the chart creates with `distributed.operator=pytorchjob` instead.
PROJECTS: dict[str, Project] = {
    p.name: p
    for p in (
        Project(
            "mlflow",
            "mlflow/mlflow",
            "ghcr.io/mlflow/mlflow:v{version}-full",
            "3.9.0",
            "the chart's -full image (database drivers, boto3) is published from MLflow 3.9.0",
        ),
        Project(
            "kserve",
            "kserve/kserve",
            None,
            "0.20.0",
            "the chart's InferenceService is validated against KServe 0.20's CRDs; older KServe is untested",
        ),
        Project(
            "mlserver",
            "SeldonIO/MLServer",
            "seldonio/mlserver:{version}",
            "1.7.0",
            "the chart's MLServer settings are tested with the 1.7 line",
        ),
        Project(
            "bentoml",
            "bentoml/BentoML",
            None,
            "1.0.0",
            "the chart probes BentoML 1.0's /livez and /readyz on port 3000",
        ),
        Project(
            "kubeflow-trainer",
            "kubeflow/trainer",
            None,
            "2.0.0",
            "the TrainJob API the chart creates arrived in Kubeflow Trainer 2.0.0 (1.x is the Training "
            "Operator: use distributed.operator=pytorchjob for it)",
        ),
    )
}
PROJECT_NAMES = tuple(PROJECTS)


@dataclass(frozen=True)
class Version:
    version: str  # SemVer, without the `v`
    tag: str  # the git tag as published
    published_at: str | None  # ISO 8601, as GitHub gives it (None in a hand-written list)
    prerelease: bool
    latest: bool
    image: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "tag": self.tag,
            "published_at": self.published_at,
            "prerelease": self.prerelease,
            "latest": self.latest,
            "image": self.image,
        }


@dataclass(frozen=True)
class VersionList:
    project: str
    versions: list[Version]  # newest first
    source: str  # LIVE, CACHE, STALE_CACHE or BUNDLED
    warnings: list[str] = field(default_factory=list)

    @property
    def latest(self) -> Version | None:
        return next((v for v in self.versions if v.latest), None)

    def recent(self, count: int = RECENT) -> list[Version]:
        return self.versions[:count]


@dataclass(frozen=True)
class Fetched:
    """What a release source answers: GitHub release objects (tag_name, draft, prerelease,
    published_at), where they came from (LIVE, CACHE or STALE_CACHE) and what to warn about."""

    releases: list[dict[str, Any]]
    source: str
    warnings: list[str] = field(default_factory=list)


class ReleaseSource(Protocol):
    def fetch(self, repo: str) -> Fetched:
        """Every release of `repo` (owner/name); a ToolError when none can be had."""
        ...


def project(name: str) -> Project:
    try:
        return PROJECTS[name]
    except KeyError:
        raise UserError(
            f"unknown project {name!r}", field="project", hint=f"use one of: {', '.join(PROJECT_NAMES)}"
        ) from None


def parse(text: str) -> semver.Version | None:
    """The SemVer of a tag or version (`v3.17.2`, `3.17.2`, `v2.1.0-rc.1`); None for anything else."""
    import semver

    text = text.strip()
    if text[:1] in ("v", "V"):
        text = text[1:]
    try:
        return semver.Version.parse(text)
    except ValueError:
        return None


def image_for(name: str, version: str) -> str | None:
    """The image the chart runs for `version` of project `name`; None when the chart runs your image
    (bentoml) or the operator picks the images (kserve, kubeflow-trainer)."""
    spec = project(name)
    parsed = parse(version)
    if parsed is None:
        raise UserError(f"{version!r} is not a version like 1.2.3", field=name)
    return spec.image.format(version=str(parsed)) if spec.image else None


def check_supported(name: str, version: str, field: str) -> str:
    """The version without its `v` when the chart supports it; else a UserError naming `field` and
    the oldest supported version."""
    import semver

    spec = project(name)
    parsed = parse(version)
    if parsed is None:
        raise UserError(
            f"{version!r} is not a version like {spec.minimum}",
            field=field,
            hint=f"`helm-mlops versions {name}` lists the releases",
        )
    if parsed < semver.Version.parse(spec.minimum):
        raise UserError(
            f"{name} {parsed} is older than the oldest version the chart supports ({spec.minimum}): "
            f"{spec.why}",
            field=field,
            hint=f"use {name} {spec.minimum} or newer (`helm-mlops versions {name}` lists them)",
        )
    return str(parsed)


def supported(name: str, version: str) -> bool:
    try:
        check_supported(name, version, name)
    except UserError:
        return False
    return True


def from_releases(name: str, releases: list[dict[str, Any]], *, include_pre: bool) -> list[Version]:
    """GitHub release objects to versions, newest first: drafts dropped, pre-releases dropped unless
    `include_pre`, tags that are no SemVer ignored, one entry per version, the highest stable marked
    latest."""
    spec = project(name)
    found: dict[semver.Version, dict[str, Any]] = {}
    for release in releases:
        tag = release.get("tag_name")
        if not isinstance(tag, str) or release.get("draft"):
            continue
        parsed = parse(tag)
        if parsed is None:
            continue
        if (bool(release.get("prerelease")) or parsed.prerelease is not None) and not include_pre:
            continue
        found.setdefault(parsed, release)
    ordered = sorted(found, reverse=True)
    latest = next((v for v in ordered if v.prerelease is None and not found[v].get("prerelease")), None)
    out = []
    for parsed in ordered:
        release = found[parsed]
        published = release.get("published_at")
        out.append(
            Version(
                version=str(parsed),
                tag=str(release["tag_name"]),
                published_at=published if isinstance(published, str) else None,
                prerelease=bool(release.get("prerelease")) or parsed.prerelease is not None,
                latest=parsed == latest,
                image=spec.image.format(version=str(parsed)) if spec.image else None,
            )
        )
    return out


def bundled_path() -> Path:
    env = os.environ.get(BUNDLED_FILE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(str(files("generator") / "data" / "versions.json"))


def bundled(name: str) -> tuple[list[dict[str, Any]], str] | None:
    """The bundled releases of a project and when the list was made; None when it has none."""
    path = bundled_path()
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ToolError(
            f"the fallback list of versions {path} cannot be read: {exc.strerror}",
        ) from None
    except ValueError as exc:
        raise ToolError(f"the fallback list of versions {path} is not valid JSON ({exc})") from None
    projects = data.get("projects") if isinstance(data, dict) else None
    releases = projects.get(name) if isinstance(projects, dict) else None
    if not isinstance(releases, list) or not releases:
        return None
    return [r for r in releases if isinstance(r, dict)], str(data.get("generated_at", "at an unknown date"))


def list_versions(
    name: str, *, include_pre: bool = False, source: ReleaseSource | None = None
) -> VersionList:
    """The releases of project `name`, newest first, from `source` (e.g. ``GitHubReleases.from_env()``)
    or, when it fails or is None, from the bundled list with a warning. A ToolError (exit 3) when
    neither has the project."""
    spec = project(name)
    warnings: list[str] = []
    reason = "no release source was given"
    if source is not None:
        try:
            fetched = source.fetch(spec.repo)
        except ToolError as exc:
            reason = str(exc)
        else:
            versions = from_releases(name, fetched.releases, include_pre=include_pre)
            return VersionList(name, versions, fetched.source, [*fetched.warnings])
        warnings.append(reason)
    try:
        fallback = bundled(name)
    except ToolError as exc:
        raise ToolError(f"cannot list {name} releases: {reason}; and {exc}") from None
    if fallback is None:
        raise ToolError(
            f"cannot list {name} releases: {reason}; and the bundled list ({bundled_path()}) has none"
        )
    releases, generated_at = fallback
    if source is not None:
        warnings.append(f"using the {BUNDLED} of {name} releases made {generated_at}: it may be out of date")
    return VersionList(name, from_releases(name, releases, include_pre=include_pre), BUNDLED, warnings)


TABLE_HEADER = ("VERSION", "PUBLISHED", "IMAGE", "NOTE")


def table_rows(name: str, shown: list[Version]) -> list[tuple[str, str, str, str]]:
    """One row per version: the version, its publication date, the chart's image and a note (latest,
    pre-release, unsupported)."""
    minimum = project(name).minimum
    out = []
    for v in shown:
        notes = [n for n, on in (("latest", v.latest), ("pre-release", v.prerelease)) if on]
        if not supported(name, v.version):
            notes.append(f"unsupported (< {minimum})")
        published = v.published_at[:10] if v.published_at else "-"
        out.append((v.version, published, v.image or "-", ", ".join(notes)))
    return out


def render(name: str, shown: list[Version], output: str) -> str:
    """`shown` as `output`: `json` (a list of objects), `yaml` (the same) or `table` (plain text)."""
    if output == "json":
        return json.dumps([v.to_json() for v in shown], indent=2)
    if output == "yaml":
        from generator import yamlio

        return yamlio.dump([v.to_json() for v in shown]).rstrip("\n")
    rows = [TABLE_HEADER, *table_rows(name, shown)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)
