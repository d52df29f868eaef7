"""`helm-mlops versions` and generator.versions, against a fake GitHub API over real HTTP on 127.0.0.1
(tests/support/github.py): pagination, filtering and sorting, the ETag/TTL cache, the token, the
fallbacks (stale cache, bundled list) and what the charts make of a version.

Expectations come from the fake server's data, the chart files and the bundled data file, never from
the code under test: tags are parsed here with their own SemVer pattern."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.errors import UserError
from tests.support.charts import CHARTS, REPO, find, template
from tests.support.github import FakeGitHub, fake_github, release
from tests.support.servers import free_port

REPO_NAME = "mlflow/mlflow"
PAGE = 4  # the fake server's page size: the releases below fill 7 pages

MLFLOW = [  # newest first by publication, as GitHub lists them
    release("nightly", 70, prerelease=True),
    release("v3.18.0", 69, draft=True),
    release("v3.18.0-rc.1", 68, prerelease=True),
    release("v2.0.0rc1", 67, prerelease=True),  # no SemVer (PEP 440): ignored
    release("v3.16.3", 66),  # a patch of an older line, published after 3.17.x
    release("v3.17.2", 65),
    release("release-1", 64),
    release("3.17.1", 63),  # no `v`
    release("v3.17.0", 60),
    release("v3.17.0-beta.2", 59, prerelease=True),
    *(release(f"v3.{minor}.{patch}", 3 * minor + patch) for minor in range(16, 7, -1) for patch in (2, 1, 0)),
]
SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


def expected(releases: list[dict[str, Any]], *, pre: bool = False) -> list[str]:
    """Versions the listing must show, newest first: drafts and non-SemVer tags out, pre-releases only
    with `pre` (a pre-release sorts below its final version)."""
    found = []
    for r in releases:
        m = SEMVER.match(r["tag_name"])
        if r["draft"] or not m:
            continue
        is_pre = bool(r["prerelease"] or m.group(4))
        if is_pre and not pre:
            continue
        key = (int(m.group(1)), int(m.group(2)), int(m.group(3)), 0 if m.group(4) else 1, m.group(4) or "")
        found.append((key, r["tag_name"].removeprefix("v")))
    return [v for _, v in sorted(found, reverse=True)]


def pages(releases: list[dict[str, Any]]) -> int:
    return -(-len(releases) // PAGE)


def chart_minimum_mlflow() -> str:
    """The oldest MLflow the chart's default -full image exists for, as charts/mlflow says it."""
    text = (CHARTS / "mlflow" / "values.yaml").read_text()
    found = re.search(r"published from MLflow (\d+\.\d+\.\d+)", text)
    assert found, "charts/mlflow/values.yaml no longer says from which MLflow the -full image exists"
    return found.group(1)


def vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("-")[0].split("."))


@pytest.fixture
def api() -> Iterator[FakeGitHub]:
    with fake_github({REPO_NAME: MLFLOW}, max_per_page=PAGE) as fake:
        yield fake


class Cli:
    def __init__(self, cache: Path, api_url: str) -> None:
        self.cache, self.api_url = cache, api_url

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {
            k: v
            for k, v in os.environ.items()
            if k
            not in (
                "GITHUB_TOKEN",
                "GH_TOKEN",
                "GITHUB_API_URL",
                "HELM_MLOPS_VERSIONS_TTL",
                "HELM_MLOPS_VERSIONS_FILE",
                "HELM_MLOPS_CACHE_DIR",
                "XDG_CACHE_HOME",
            )
        }
        clean |= {"PYTHONPATH": str(REPO), "HELM_MLOPS_CACHE_DIR": str(self.cache)}
        clean |= {"GITHUB_API_URL": self.api_url, **env}
        return subprocess.run(
            [sys.executable, "-m", "generator", "versions", *args],
            cwd=REPO,
            env=clean,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def cli(api: FakeGitHub, tmp_path: Path) -> Cli:
    return Cli(tmp_path / "cache", api.url)


def listed(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [item["version"] for item in json.loads(result.stdout)]


def table_versions(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["VERSION", "PUBLISHED", "IMAGE", "NOTE"]
    return [line.split()[0] for line in lines[1:]]


def source_of(result: subprocess.CompletedProcess[str]) -> str:
    found = re.findall(r"^source: (.+)$", result.stderr, re.M)
    assert len(found) == 1, result.stderr
    return str(found[0])


# -- listing


def test_pagination_filters_and_sorting(cli: Cli, api: FakeGitHub) -> None:
    result = cli("mlflow", "--all", "-o", "json")
    assert listed(result) == expected(MLFLOW)
    assert source_of(result) == "live"
    seen = api.seen()
    assert len(seen) == pages(MLFLOW) >= 3
    # The first page as the API documents it, then exactly the pages the Link headers named.
    assert seen[0].path == "/repos/mlflow/mlflow/releases?per_page=100"
    assert [s.path for s in seen[1:]] == [
        f"/repos/mlflow/mlflow/releases?per_page={PAGE}&page={n}" for n in range(2, pages(MLFLOW) + 1)
    ]
    assert all(s.status == 200 for s in seen)
    items = json.loads(result.stdout)
    tags = {r["tag_name"].removeprefix("v"): r["tag_name"] for r in MLFLOW}
    assert [i["tag"] for i in items] == [tags[i["version"]] for i in items]  # `v` or not, as published
    published = {r["tag_name"]: r["published_at"] for r in MLFLOW}
    assert all(i["published_at"] == published[i["tag"]] for i in items)


def test_pre_releases_only_with_pre(cli: Cli) -> None:
    with_pre = cli("mlflow", "--all", "--pre", "-o", "json")
    assert listed(with_pre) == expected(MLFLOW, pre=True)
    items = {i["version"]: i for i in json.loads(with_pre.stdout)}
    assert items["3.18.0-rc.1"]["prerelease"] and items["3.17.0-beta.2"]["prerelease"]
    assert "3.18.0" not in items  # a draft, even with --pre
    # The latest is the highest stable version, not the newest pre-release nor the latest published.
    assert [v for v, i in items.items() if i["latest"]] == [expected(MLFLOW)[0]]
    assert not any(i["prerelease"] for i in json.loads(cli("mlflow", "--all", "-o", "json").stdout))


def test_table_shows_the_newest_ten_stable_and_marks_them(cli: Cli) -> None:
    result = cli("mlflow")
    assert table_versions(result) == expected(MLFLOW)[:10]
    assert result.stdout.splitlines()[1].split()[-1] == "latest"
    everything = cli("mlflow", "--all")
    assert table_versions(everything) == expected(MLFLOW)
    minimum = chart_minimum_mlflow()
    for line in everything.stdout.splitlines()[1:]:
        version = line.split()[0]
        assert ("unsupported" in line) == (vkey(version) < vkey(minimum)), line
        assert f"(< {minimum})" in line or "unsupported" not in line


def test_json_shape_and_images(cli: Cli) -> None:
    items = json.loads(cli("mlflow", "-o", "json").stdout)
    assert len(items) == 10
    values = yaml.safe_load((CHARTS / "mlflow" / "values.yaml").read_text())
    for item in items:
        assert set(item) == {"version", "tag", "published_at", "prerelease", "latest", "image"}
        assert isinstance(item["published_at"], str) and item["prerelease"] is False
        assert item["image"] == f"{values['image']['repository']}:v{item['version']}-full"
    assert [i["latest"] for i in items] == [True] + [False] * 9


def test_yaml_output_is_the_json_output(cli: Cli) -> None:
    as_json = json.loads(cli("mlflow", "--pre", "-o", "json").stdout)
    assert yaml.safe_load(cli("mlflow", "--pre", "-o", "yaml").stdout) == as_json


def test_unknown_project_is_a_choice_error(cli: Cli, api: FakeGitHub) -> None:
    result = cli("tensorflow")
    assert result.returncode == 2
    assert "Invalid value for" in result.stderr and "kubeflow-trainer" in result.stderr
    assert api.count() == 0


def test_github_enterprise_base_url(tmp_path: Path) -> None:
    with fake_github({REPO_NAME: MLFLOW}, max_per_page=PAGE, prefix="/api/v3") as ghe:
        run = Cli(tmp_path, ghe.url + "/api/v3/")
        assert listed(run("mlflow", "--all", "-o", "json")) == expected(MLFLOW)
        assert len(ghe.seen()) == pages(MLFLOW)
        assert all(s.path.startswith("/api/v3/repos/mlflow/mlflow/releases?") for s in ghe.seen())


def test_next_links_to_another_host_are_not_followed(tmp_path: Path) -> None:
    elsewhere = f"http://127.0.0.1:{free_port()}"
    with fake_github({REPO_NAME: MLFLOW}, max_per_page=8, next_link_host=elsewhere) as fake:
        result = Cli(tmp_path, fake.url)("mlflow", "--all", "-o", "json", GITHUB_TOKEN="t0ken-x")
        assert listed(result) == expected(MLFLOW[:8])  # the first page only
        assert len(fake.seen()) == 1
        assert "another host" in result.stderr and elsewhere in result.stderr


# -- cache


def test_within_the_ttl_no_request_at_all(cli: Cli, api: FakeGitHub) -> None:
    first = cli("mlflow", "--all", "-o", "json")
    assert source_of(first) == "live"
    before = api.count()
    second = cli("mlflow", "--all", "-o", "json")
    assert api.count() == before
    assert second.stdout == first.stdout and source_of(second) == "cache"
    assert "warning" not in second.stderr


def test_after_the_ttl_a_conditional_request_and_304(cli: Cli, api: FakeGitHub) -> None:
    first = cli("mlflow", "--all", "-o", "json")
    etags_sent_before = [s.headers.get("if-none-match") for s in api.seen()]
    assert etags_sent_before == [None] * pages(MLFLOW)
    mark = api.count()
    again = cli("mlflow", "--all", "-o", "json", "--ttl", "0")
    revalidated = api.seen(mark)
    assert len(revalidated) == pages(MLFLOW)
    assert all(s.status == 304 and s.headers.get("if-none-match", "").startswith('"') for s in revalidated)
    assert again.stdout == first.stdout and source_of(again) == "cache"


def test_a_304_restarts_the_ttl(cli: Cli, api: FakeGitHub) -> None:
    ttl = {"HELM_MLOPS_VERSIONS_TTL": "3"}
    cli("mlflow", **ttl)
    time.sleep(3.2)  # the pages are now older than the TTL
    mark = api.count()
    assert source_of(cli("mlflow", **ttl)) == "cache"
    assert [s.status for s in api.seen(mark)] == [304] * pages(MLFLOW)
    mark = api.count()
    cli("mlflow", **ttl)  # within 3 s of the 304s: nothing asked
    assert api.count() == mark


def test_a_changed_release_list_replaces_the_cache(cli: Cli, api: FakeGitHub) -> None:
    cli("mlflow", "-o", "json")
    api.releases[REPO_NAME] = [release("v3.19.0", 90), *MLFLOW]
    assert listed(cli("mlflow", "-o", "json"))[0] != "3.19.0"  # within the TTL: the cache
    mark = api.count()
    assert listed(cli("mlflow", "-o", "json", "--ttl", "0"))[0] == "3.19.0"
    assert 200 in [s.status for s in api.seen(mark)]
    assert listed(cli("mlflow", "-o", "json"))[0] == "3.19.0"


def test_the_token_is_sent_and_keys_the_cache(cli: Cli, api: FakeGitHub) -> None:
    cli("mlflow", GITHUB_TOKEN="token-a")
    assert {s.headers.get("authorization") for s in api.seen()} == {"Bearer token-a"}
    mark = api.count()
    cli("mlflow", GITHUB_TOKEN="token-a")
    assert api.count() == mark  # the same token: its cache
    result = cli("mlflow", GITHUB_TOKEN="token-b")
    other = api.seen(mark)
    assert len(other) == pages(MLFLOW) and source_of(result) == "live"  # another token: another entry
    assert all(
        s.headers.get("authorization") == "Bearer token-b" and "if-none-match" not in s.headers for s in other
    )
    mark = api.count()
    cli("mlflow", GH_TOKEN="token-c")
    assert {s.headers.get("authorization") for s in api.seen(mark)} == {"Bearer token-c"}
    mark = api.count()
    cli("mlflow")
    assert len(api.seen(mark)) == pages(MLFLOW)
    assert all("authorization" not in s.headers for s in api.seen(mark))


def test_a_damaged_cache_is_fetched_again(cli: Cli, api: FakeGitHub) -> None:
    first = cli("mlflow", "-o", "json")
    for path in cli.cache.rglob("*"):
        if path.is_file():
            path.write_text("{not json")
    mark = api.count()
    second = cli("mlflow", "-o", "json")
    assert second.stdout == first.stdout and len(api.seen(mark)) == pages(MLFLOW)


@pytest.mark.parametrize("mode", ["rate-limit-403", "rate-limit-429", "error-500"])
def test_rate_limit_or_error_falls_back_to_the_stale_cache(cli: Cli, api: FakeGitHub, mode: str) -> None:
    first = cli("mlflow", "--all", "-o", "json")
    api.mode = mode
    mark = api.count()
    result = cli("mlflow", "--all", "-o", "json", "--ttl", "0")
    assert result.returncode == 0 and result.stdout == first.stdout
    assert len(api.seen(mark)) == 1  # once refused, the other pages come from the cache unasked
    assert source_of(result) == "stale cache"
    warning = next(line for line in result.stderr.splitlines() if line.startswith("warning:"))
    assert "stale cache" in warning
    assert ("rate limit" in warning) == mode.startswith("rate-limit")
    if mode == "rate-limit-403":
        assert "resets at" in warning and "GITHUB_TOKEN" in warning
    if mode == "rate-limit-429":
        assert "retry after 60 s" in warning


def bundled_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPO / "generator" / "data" / "versions.json").read_text())
    return data


def test_rate_limited_with_no_cache_uses_the_bundled_list(cli: Cli, api: FakeGitHub) -> None:
    api.mode = "rate-limit-429"
    result = cli("kserve", "-o", "json")
    assert listed(result) == expected(bundled_data()["projects"]["kserve"])[:10]
    assert source_of(result) == "bundled list" and "rate limit" in result.stderr


def test_no_server_and_no_cache_uses_the_bundled_list(tmp_path: Path) -> None:
    run = Cli(tmp_path, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    data = bundled_data()
    for project in ("mlflow", "kserve", "mlserver", "bentoml", "kubeflow-trainer"):
        result = run(project, "--all", "-o", "json")
        assert listed(result) == expected(data["projects"][project]), project
        assert source_of(result) == "bundled list"
        assert "cannot reach" in result.stderr
        assert (
            f"warning: using the bundled list of {project} releases made {data['generated_at']}"
            in result.stderr
        )
    table = run("mlflow")
    assert table_versions(table) == expected(data["projects"]["mlflow"])[:10]


def test_the_bundled_list_has_the_charts_versions() -> None:
    data = bundled_data()
    assert data["generated_at"] and "Fallback" in data["note"]
    mlflow = expected(data["projects"]["mlflow"])
    chart = yaml.safe_load((CHARTS / "mlflow" / "Chart.yaml").read_text())
    assert mlflow[0] == chart["appVersion"]
    inference = yaml.safe_load((CHARTS / "inference-service" / "values.yaml").read_text())
    assert inference["mlserver"]["image"]["tag"] in expected(data["projects"]["mlserver"])
    assert (
        subprocess.run(
            [sys.executable, str(REPO / "hack" / "bundle-versions.py"), "--check"],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


def test_nothing_at_all_is_exit_3(tmp_path: Path) -> None:
    empty = tmp_path / "versions.json"
    empty.write_text('{"generated_at": "2026-01-01T00:00:00Z", "projects": {}}')
    run = Cli(tmp_path / "cache", f"http://127.0.0.1:{free_port()}")
    result = run("mlflow", HELM_MLOPS_VERSIONS_FILE=str(empty))
    assert result.returncode == 3, result.stderr
    assert "error: cannot list mlflow releases" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_bad_settings_are_user_errors(cli: Cli, api: FakeGitHub) -> None:
    ttl = cli("mlflow", HELM_MLOPS_VERSIONS_TTL="an hour")
    assert ttl.returncode == 2 and "HELM_MLOPS_VERSIONS_TTL:" in ttl.stderr
    url = cli("mlflow", GITHUB_API_URL="ftp://example")
    assert url.returncode == 2 and "GITHUB_API_URL:" in url.stderr
    assert cli("mlflow", "--ttl", "-1").returncode == 2
    assert api.count() == 0


def test_the_token_is_never_stored_nor_shown(cli: Cli, api: FakeGitHub) -> None:
    token = "ghp_" + os.urandom(16).hex()
    outputs = [cli("mlflow", "--all", GITHUB_TOKEN=token), cli("mlflow", "-o", "json", GITHUB_TOKEN=token)]
    outputs.append(cli("mlflow", "--ttl", "0", GITHUB_TOKEN=token))  # 304s rewrite the cache
    api.releases[REPO_NAME] = [release("v3.20.0", 99), *MLFLOW]
    outputs.append(cli("mlflow", "--ttl", "0", "-o", "yaml", GITHUB_TOKEN=token))  # 200s
    api.mode = "rate-limit-403"
    outputs.append(cli("mlflow", "--ttl", "0", GITHUB_TOKEN=token))
    outputs.append(cli("kserve", GITHUB_TOKEN=token))  # bundled, after a failure
    assert {s.headers.get("authorization") for s in api.seen()} == {f"Bearer {token}"}
    files = [p for p in cli.cache.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert token.encode() not in path.read_bytes(), path
        assert token not in path.name
    for out in outputs:
        assert token not in out.stdout and token not in out.stderr


# -- what the charts make of a version


def test_images_are_the_charts_images(tmp_path: Path) -> None:
    from generator.versions import image_for

    chart = yaml.safe_load((CHARTS / "mlflow" / "Chart.yaml").read_text())
    docs = template(CHARTS / "mlflow", tmp_dir=tmp_path)
    server = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert server["image"] == image_for("mlflow", chart["appVersion"])
    assert image_for("mlflow", "v" + chart["appVersion"]) == server["image"]
    docs = template(
        CHARTS / "inference-service",
        values={
            "runtime": "mlserver",
            "mlserver": {"image": {"tag": "1.7.0"}},
            "model": {
                "trustModel": True,
                "source": {"type": "pvc", "pvc": {"claimName": "m", "path": "model.joblib"}},
            },
        },
        tmp_dir=tmp_path,
    )
    server = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert server["image"] == image_for("mlserver", "1.7.0")
    # BentoML runs your image; KServe's and Kubeflow Trainer's images are their controllers' choice.
    assert image_for("bentoml", "1.4.0") is None
    assert image_for("kserve", "0.21.0") is None and image_for("kubeflow-trainer", "2.1.0") is None
    with pytest.raises(UserError):
        image_for("mlflow", "latest")


def test_versions_older_than_the_chart_supports_are_refused() -> None:
    from generator.versions import PROJECTS, check_supported

    minimum = chart_minimum_mlflow()
    major, minor, _ = vkey(minimum)
    older = f"{major}.{minor - 1}.9" if minor else f"{major - 1}.99.0"
    with pytest.raises(UserError) as refused:
        check_supported("mlflow", older, "mlflow.version")
    assert refused.value.field == "mlflow.version" and refused.value.exit_code == 2
    assert minimum in str(refused.value) and older in str(refused.value)
    assert check_supported("mlflow", "v" + minimum, "mlflow.version") == minimum
    chart = yaml.safe_load((CHARTS / "mlflow" / "Chart.yaml").read_text())
    assert check_supported("mlflow", chart["appVersion"], "x") == chart["appVersion"]
    inference = yaml.safe_load((CHARTS / "inference-service" / "values.yaml").read_text())
    assert check_supported("mlserver", inference["mlserver"]["image"]["tag"], "x")
    with pytest.raises(UserError) as pre:  # a pre-release of the minimum is older than it
        check_supported("mlflow", f"{minimum}-rc.1", "x")
    assert minimum in str(pre.value)
    with pytest.raises(UserError) as trainer:
        check_supported("kubeflow-trainer", "1.9.0", "distributed.operator")
    assert "pytorchjob" in str(trainer.value)
    with pytest.raises(UserError) as garbage:
        check_supported("kserve", "latest", "kserve.version")
    assert garbage.value.field == "kserve.version" and "not a version" in str(garbage.value)
    with pytest.raises(UserError):
        check_supported("tensorflow", "2.0.0", "x")
    for name, spec in PROJECTS.items():  # every minimum is itself supported, the patch below it not
        assert check_supported(name, spec.minimum, "x") == spec.minimum
        assert "/" in spec.repo and spec.why


def test_list_versions_without_a_source_is_the_bundled_list() -> None:
    from generator.versions import BUNDLED, list_versions

    listing = list_versions("mlserver")
    assert listing.source == BUNDLED and listing.warnings == []
    assert [v.version for v in listing.versions] == expected(bundled_data()["projects"]["mlserver"])
    image = yaml.safe_load((CHARTS / "inference-service" / "values.yaml").read_text())["mlserver"]["image"]
    assert listing.latest is listing.versions[0]
    assert listing.latest.image == f"{image['repository']}:{listing.latest.version}"


def test_the_python_api_reads_the_fake_api(api: FakeGitHub, tmp_path: Path) -> None:
    from generator.github import GitHubReleases
    from generator.versions import CACHE, LIVE, list_versions

    source = GitHubReleases(api.url, "sekrit-123", tmp_path, ttl=600)
    assert "sekrit" not in repr(source)
    live = list_versions("mlflow", include_pre=True, source=source)
    assert live.source == LIVE and [v.version for v in live.versions] == expected(MLFLOW, pre=True)
    cached = list_versions("mlflow", source=source)
    assert cached.source == CACHE and [v.version for v in cached.versions] == expected(MLFLOW)
    assert len(api.seen()) == pages(MLFLOW)


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from generator.paths import cache_dir

    monkeypatch.delenv("HELM_MLOPS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "helm-mlops"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "helm-mlops"
    monkeypatch.setenv("HELM_MLOPS_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
