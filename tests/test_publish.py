"""`helm-mlops publish` for real: every chart and a generated full-stack stack published to an HTTP
chart repository directory (served by a static HTTP server) and to Debian's docker-registry (plain HTTP
with htpasswd auth), then used from both sides with Helm 4 and Helm 3: `helm repo add/update/search`,
`helm pull`, `helm show chart`, `helm template` from the repository and from oci://, each pulled chart
compared with its source, and the stack published by OCI installed on the test cluster from oci:// alone.
Publishing again keeps the index entries (created, digest); bad input is refused before anything is
written. The TLS registry and signed provenance are in tests/test_publish_signed.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.charts import CHARTS, REPO, TOOLS_BIN, helm_home_env, helm_path
from tests.support.cluster import Cluster
from tests.support.plugin import http_server
from tests.support.servers import Registry, oci_registry

EXE = Path(sys.executable).parent / "helm-mlops"
CHART_NAMES = ("inference-service", "mlflow", "training-job")


def helm_env(home: Path) -> dict[str, str]:
    """helm's repositories, registry credentials and caches under HOME (never the user's)."""
    return {**os.environ, "PATH": f"{TOOLS_BIN}:{os.environ['PATH']}", **helm_home_env(home)}


def _run(argv: list[str], home: Path, stdin: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, env=helm_env(home), check=False, timeout=600
    )


def publish(
    *args: str | Path, home: Path, stdin: str | None = None, helm: str = "helm4"
) -> subprocess.CompletedProcess[str]:
    return _run([str(EXE), "publish", *map(str, args), "--helm", helm_path(helm)], home, stdin)


def helm(name: str, *args: str | Path, home: Path, stdin: str | None = None) -> str:
    proc = _run([helm_path(name), *map(str, args)], home, stdin)
    assert proc.returncode == 0, f"helm {' '.join(map(str, args))}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def refused(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: "), proc.stderr
    return proc.stderr


def generate(out: Path, *args: str) -> Path:
    proc = subprocess.run(
        [str(EXE), "generate", "--preset", "full-stack", "-o", str(out), "-q", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def archive_files(archive: Path) -> dict[str, bytes]:
    """The files of a chart archive, by path below the chart's folder."""
    out = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                out[member.name.split("/", 1)[1]] = handle.read()
    return out


def assert_same_as_source(archive: Path, source: Path) -> None:
    """The pulled chart is its source: every file byte for byte (Chart.yaml, which helm rewrites, as
    YAML), the templates all there, and charts/ either the source's or (a stack generated with
    --chart-repo) exactly its dependencies."""
    files = archive_files(archive)
    meta = yaml.safe_load(files.pop("Chart.yaml"))
    for dep in meta.get("dependencies") or []:  # helm writes `repository: ""` for a vendored one
        if dep.get("repository") == "":
            del dep["repository"]
    assert meta == yaml.safe_load((source / "Chart.yaml").read_text())
    lock = files.pop("Chart.lock", None)
    if lock is not None and not (source / "Chart.lock").exists():  # written by `helm dependency build`
        locked = yaml.safe_load(lock)["dependencies"]
        assert [(d["name"], d["version"]) for d in locked] == [
            (d["name"], d["version"]) for d in meta["dependencies"]
        ]
    elif lock is not None:
        assert lock == (source / "Chart.lock").read_bytes()
    for rel, data in files.items():
        if rel.startswith("charts/"):  # a dependency, which helm stores unpacked: one of our charts
            dep, _, inner = rel.removeprefix("charts/").partition("/")
            if inner != "Chart.yaml":
                assert data == (CHARTS / dep / inner).read_bytes(), f"{archive.name}: {rel} differs"
            continue
        assert data == (source / rel).read_bytes(), f"{archive.name}: {rel} differs from {source / rel}"
    templates = {str(p.relative_to(source)) for p in (source / "templates").rglob("*") if p.is_file()}
    assert templates <= set(files), sorted(templates - set(files))
    for dep in meta.get("dependencies") or []:
        assert f"charts/{dep['name']}/templates/_helpers.tpl" in files, (archive.name, dep)
    assert "answers.yaml" not in files and "credentials.yaml" not in files


# Values each chart renders with (its defaults need a script or a model).
RENDER_VALUES = {
    "mlflow": CHARTS / "mlflow" / "ci" / "default-values.yaml",
    "training-job": CHARTS / "training-job" / "ci" / "default-values.yaml",
    "inference-service": CHARTS / "inference-service" / "ci" / "fastapi-https-onnx-values.yaml",
}


def rendered(helm_name: str, ref: str | Path, name: str, *args: str, home: Path) -> Any:
    """`helm template` of REF: the text for a chart; for the stack, whose in-cluster database password
    is random at each render, the kinds and names of its objects."""
    values = ["-f", str(RENDER_VALUES[name])] if name in RENDER_VALUES else []
    out = helm(helm_name, "template", "r1", ref, "--namespace", "mlops", *values, *args, home=home)
    if name in RENDER_VALUES:
        return out
    return sorted((d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out) if d)


def index_of(repo_dir: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((repo_dir / "index.yaml").read_text()))


def entry(index: dict[str, Any], name: str, version: str) -> dict[str, Any]:
    (found,) = [e for e in index["entries"][name] if e["version"] == version]
    return dict(found)


def chart_version(path: Path) -> str:
    return str(yaml.safe_load((path / "Chart.yaml").read_text())["version"])


@dataclass
class Published:
    home: Path  # a helm home logged in to the registry
    site: Path  # the HTTP repository's directory
    url: str  # where it is served
    registry: Registry
    oci: str  # oci://HOST/charts
    stack: Path  # the full-stack stack, charts vendored
    first_index: dict[str, Any]  # index.yaml after the first publish


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    root = tmp_path_factory.mktemp("publish")
    home = root / "helm"
    site = root / "site"
    site.mkdir()
    stack = generate(root / "full-stack")
    with oci_registry(root / "registry") as registry, http_server(site) as url:
        # The user's way in: `helm registry login` (password on stdin); publish uses its credentials.
        helm("helm4", "registry", "login", registry.host, "--username", registry.username,
             "--password-stdin", "--plain-http", home=home, stdin=registry.password)  # fmt: skip
        oci = f"oci://{registry.host}/charts"
        sources = [CHARTS / n for n in CHART_NAMES] + [stack]
        said = ok(
            publish(*sources, "--repo-dir", site, "--url", url, "--oci", oci, "--plain-http", home=home)
        )
        for name in CHART_NAMES:
            version = chart_version(CHARTS / name)
            assert f"published: {url}/{name}-{version}.tgz" in said, said
            assert f"published: {oci}/{name}:{version}" in said, said
        yield Published(home, site, url, registry, oci, stack, index_of(site))


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
def test_the_http_repository_serves_every_chart_as_published(
    published: Published, helm_name: str, tmp_path: Path
) -> None:
    home = tmp_path / "helm"
    helm(helm_name, "repo", "add", "mlops", published.url, home=home)
    helm(helm_name, "repo", "update", home=home)
    found = {
        row["name"]: row
        for row in yaml.safe_load(helm(helm_name, "search", "repo", "mlops/", "-o", "yaml", home=home))
    }
    sources = {n: CHARTS / n for n in CHART_NAMES} | {"full-stack": published.stack}
    assert set(found) == {f"mlops/{n}" for n in sources}, found
    for name, source in sources.items():
        version = chart_version(source)
        assert found[f"mlops/{name}"]["version"] == version
        shown = yaml.safe_load(
            helm(helm_name, "show", "chart", f"mlops/{name}", "--version", version, home=home)
        )
        assert shown["name"] == name and shown["version"] == version
        pulled = tmp_path / "pulled" / name
        pulled.mkdir(parents=True)
        helm(helm_name, "pull", f"mlops/{name}", "--version", version, "-d", pulled, home=home)
        assert_same_as_source(pulled / f"{name}-{version}.tgz", source)
        # What helm renders from the repository is what it renders from the source.
        from_repo = rendered(helm_name, f"mlops/{name}", name, "--version", version, home=home)
        assert from_repo == rendered(helm_name, source, name, home=home)


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
def test_the_oci_registry_serves_every_chart_as_published(
    published: Published, helm_name: str, tmp_path: Path
) -> None:
    home = tmp_path / "helm"
    registry = published.registry
    helm(helm_name, "registry", "login", registry.host, "--username", registry.username,
         "--password-stdin", "--plain-http", home=home, stdin=registry.password)  # fmt: skip
    for name, source in {n: CHARTS / n for n in CHART_NAMES}.items():
        version = chart_version(source)
        ref = f"{published.oci}/{name}"
        shown = yaml.safe_load(
            helm(helm_name, "show", "chart", ref, "--version", version, "--plain-http", home=home)
        )
        assert shown["name"] == name and shown["version"] == version
        pulled = tmp_path / "pulled" / name
        pulled.mkdir(parents=True)
        helm(helm_name, "pull", ref, "--version", version, "-d", pulled, "--plain-http", home=home)
        assert_same_as_source(pulled / f"{name}-{version}.tgz", source)
        from_oci = rendered(helm_name, ref, name, "--version", version, "--plain-http", home=home)
        assert from_oci == rendered(helm_name, source, name, home=home)


def test_publishing_again_keeps_every_entry_and_skips_what_is_there(published: Published) -> None:
    """Same charts again, packaged by Helm 3.17 (whose archives differ byte-wise from Helm 4's at every
    package): nothing is republished, index.yaml keeps each entry's created time and digest."""
    sources = [CHARTS / n for n in CHART_NAMES] + [published.stack]
    before = (published.site / "index.yaml").read_bytes()
    proc = publish(*sources, "--repo-dir", published.site, "--url", published.url, "--oci", published.oci,
                   "--plain-http", home=published.home, helm="helm3.17")  # fmt: skip
    said = ok(proc)
    assert "published" not in said and said.count(" is already in the index, same content") == 4, said
    for name in CHART_NAMES:
        where = f"{published.oci}/{name}:{chart_version(CHARTS / name)}"
        assert f"warning: {where} is already there with the same content: skipped" in proc.stderr
    assert (published.site / "index.yaml").read_bytes() == before
    # --force replaces other content only: the same content stays as it is, its created time too.
    said = ok(
        publish(
            *sources, "--repo-dir", published.site, "--url", published.url, "--force", home=published.home
        )
    )
    assert "published" not in said and "replaced" not in said and said.count("unchanged: ") == 4, said
    assert (published.site / "index.yaml").read_bytes() == before


def test_a_new_version_is_added_beside_the_old_entries(published: Published, tmp_path: Path) -> None:
    source = tmp_path / "training-job"
    shutil.copytree(CHARTS / "training-job", source)
    old = chart_version(source)
    previous = index_of(published.site)
    ok(publish(source, "--repo-dir", published.site, "--url", published.url, "--version", "99.0.0",
               home=published.home))  # fmt: skip
    index = index_of(published.site)
    for name, entries in previous["entries"].items():
        for first in entries:
            now = entry(index, name, first["version"])
            assert (now["created"], now["digest"]) == (first["created"], first["digest"]), name
    new = entry(index, "training-job", "99.0.0")
    assert new["urls"] == [f"{published.url}/training-job-99.0.0.tgz"]
    assert (published.site / "training-job-99.0.0.tgz").is_file() and old != "99.0.0"
    assert not [p for p in published.site.iterdir() if p.name.startswith(".")], "temporary files left"


def test_a_version_published_with_other_content_is_refused_then_forced(
    published: Published, tmp_path: Path
) -> None:
    source = tmp_path / "mlflow"
    shutil.copytree(CHARTS / "mlflow", source)
    (source / "templates" / "NOTES.txt").write_text("changed\n")
    version = chart_version(source)
    before = {p.name: p.read_bytes() for p in published.site.iterdir()}
    common = ("--repo-dir", published.site, "--url", published.url, "--oci", published.oci, "--plain-http")
    message = refused(publish(source, *common, home=published.home))
    assert f"mlflow {version} is already published at {published.url}/mlflow-{version}.tgz" in message
    assert f"{published.oci}/mlflow:{version}" in message and "--force" in message
    assert {p.name: p.read_bytes() for p in published.site.iterdir()} == before  # nothing written

    said = ok(publish(source, *common, "--force", "--dry-run", home=published.home))
    assert f"would be replaced: {published.url}/mlflow-{version}.tgz (dry run)" in said
    assert f"would be replaced: {published.oci}/mlflow:{version} (dry run)" in said
    assert {p.name: p.read_bytes() for p in published.site.iterdir()} == before  # a dry run writes nothing
    untouched = tmp_path / "untouched"
    untouched.mkdir()
    helm("helm4", "pull", f"{published.oci}/mlflow", "--version", version, "-d", untouched, "--plain-http",
         home=published.home)  # fmt: skip
    assert archive_files(untouched / f"mlflow-{version}.tgz")["templates/NOTES.txt"] != b"changed\n"

    said = ok(publish(source, *common, "--force", home=published.home))
    assert f"replaced: {published.url}/mlflow-{version}.tgz" in said
    assert f"replaced: {published.oci}/mlflow:{version}" in said
    index = index_of(published.site)
    assert (
        entry(index, "mlflow", version)["created"]
        != entry(published.first_index, "mlflow", version)["created"]
    )
    kept = entry(index, "training-job", chart_version(CHARTS / "training-job"))
    assert kept == entry(published.first_index, "training-job", chart_version(CHARTS / "training-job"))
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    helm("helm4", "pull", f"{published.oci}/mlflow", "--version", version, "-d", pulled, "--plain-http",
         home=published.home)  # fmt: skip
    assert archive_files(pulled / f"mlflow-{version}.tgz")["templates/NOTES.txt"] == b"changed\n"
    # Put the chart back as it was, for the other tests.
    ok(publish(CHARTS / "mlflow", *common, "--force", home=published.home))


@pytest.mark.e2e
def test_a_stack_referencing_published_charts_installs_from_oci_alone(
    published: Published, cluster: Cluster, tmp_path: Path
) -> None:
    """`generate --chart-repo oci://...`: the stack names the published charts instead of vendoring
    them; publish fetches them (helm dependency build) into the package without touching the stack's
    folder; then `helm install NAME oci://.../full-stack` (Helm 4, then Helm 3) installs it with no
    checkout: no path of this repository reaches helm."""
    from tests.test_presets import prepare_preset

    namespace = cluster.restricted_namespace("published")
    try:
        prepare_preset(cluster, "full-stack", namespace)
        where = f"global.namespace={namespace}"
        stack = generate(tmp_path / "stack", "--chart-repo", published.oci, "--set-string", where,
                         "--set", "name=pubstack")  # fmt: skip
        assert not (stack / "charts").exists()
        said = ok(publish(stack, "--oci", published.oci, "--plain-http", home=published.home))
        assert f"published: {published.oci}/pubstack:0.1.0" in said
        assert not (stack / "charts").exists(), "publish changed the stack's folder"
        env_home = published.home
        for helm_name in ("helm4", "helm3"):
            cwd = tmp_path / f"elsewhere-{helm_name}"
            cwd.mkdir()
            proc = subprocess.run(
                [
                    helm_path(helm_name),
                    "install",
                    "pubstack",
                    f"{published.oci}/pubstack",
                    "--version",
                    "0.1.0",
                    "--plain-http",
                    "-n",
                    namespace,
                    "--wait",
                    "--timeout",
                    "4m",
                ],
                cwd=cwd,
                env={**helm_env(env_home), "KUBECONFIG": str(cluster.kubeconfig)},
                capture_output=True,
                text=True,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr
            meta = yaml.safe_load(
                cluster.helm(helm_name, "get", "metadata", "pubstack", "-n", namespace, "-o", "json").stdout
            )
            assert (meta["chart"], meta["version"], meta["status"]) == ("pubstack", "0.1.0", "deployed"), meta
            # The three published charts are in it: each one's workload runs.
            assert (
                cluster.get("deployment", "pubstack-mlflow", "-n", namespace)["status"]["readyReplicas"] >= 1
            )
            assert cluster.get("deployment", "pubstack-iris", "-n", namespace)["metadata"]["name"]
            jobs = cluster.get("job", "-n", namespace)["items"]
            assert any(j["metadata"]["name"].startswith("pubstack-train-iris-") for j in jobs), jobs
            cluster.helm(helm_name, "uninstall", "pubstack", "-n", namespace, "--wait")
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def test_a_stack_referencing_an_http_repository_is_published_with_its_charts(
    published: Published, tmp_path: Path
) -> None:
    stack = generate(tmp_path / "stack", "--chart-repo", published.url, "--set", "name=httpstack")
    site = tmp_path / "site"
    said = ok(publish(stack, "--repo-dir", site, "--url", "https://charts.example.com", home=tmp_path / "h"))
    assert "published: https://charts.example.com/httpstack-0.1.0.tgz" in said
    assert_same_as_source(site / "httpstack-0.1.0.tgz", stack)  # the charts bundled are ours
    assert not (stack / "charts").exists()


# --- bad input: one line with the fix, nothing written ------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A repository directory holding one published chart."""
    site = tmp_path / "site"
    ok(
        publish(
            CHARTS / "training-job", "--repo-dir", site, "--url", "https://c.example.com", home=tmp_path / "h"
        )
    )
    return site


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["{tmp}"], "is not a chart: it has no Chart.yaml"),
        (["{tmp}/nothing-here"], "does not exist"),
        ([], "CHART_OR_STACK_DIR: nothing to publish"),
        (["{chart}", "--url", "https://c.example.com"], "--url goes with --repo-dir"),
        (["{chart}", "--repo-dir", "{site}"], "--url: --repo-dir needs the URL"),
        (["{chart}", "--repo-dir", "{site}", "--url", "ftp://x"], "--url"),
        (["{chart}", "--oci", "https://registry.example.com/charts"], "--oci: 'https://registry.example.com/charts' is not an OCI repository"),  # noqa: E501
        (["{chart}", "--oci", "oci://registry.example.com/charts:1.0"], "no tag"),
        (["{chart}", "--repo-dir", "{site}", "--url", "https://c.example.com", "--plain-http"], "--plain-http applies to --oci only"),  # noqa: E501
        (["{chart}", "--oci", "oci://r.example.com/c", "--username", "u"], "--username and --password-stdin go together"),  # noqa: E501
        (["{chart}", "--oci", "oci://r.example.com/c", "--ca-file", "{tmp}/none.pem"], "--ca-file"),
        (["{chart}", "--repo-dir", "{site}", "--url", "https://c.example.com", "--sign"], "--sign needs --key"),  # noqa: E501
        (["{chart}", "--repo-dir", "{site}", "--url", "https://c.example.com", "--sign", "--key", "k"], "--sign needs --keyring"),  # noqa: E501
        (["{chart}", "--repo-dir", "{site}", "--url", "https://c.example.com", "--sign", "--key", "k", "--keyring", "{tmp}/none.gpg"], "--keyring"),  # noqa: E501
        (["{chart}", "--repo-dir", "{site}", "--url", "https://c.example.com", "--key", "k"], "--key is for signing"),  # noqa: E501
        (["{chart}", "--repo-dir", "{site}", "--url", "https://c.example.com", "--version", "one"], "--version: 'one' is not a semantic version"),  # noqa: E501
        (["{chart}", "--repo-dir", "{site}", "--url", "https://c.example.com/a?x=1"], "--url: has a query or fragment"),  # noqa: E501
        (["{chart}", "--oci", "oci://r.example.com/Charts"], "'Charts' is not a repository path"),
        (["{chart}", "--oci", "oci://r.example.com//c"], "is not a repository path"),
        (["{chart}", "--oci", "oci://r.example.com:99999/c"], "'r.example.com:99999' is not a registry host[:port]"),  # noqa: E501
        (["{chart}", "--oci", "oci://r.example.com/c@sha256:abc"], "is not an OCI repository"),
        (["{chart}", "--oci", "oci://r.example.com/c", "--ca-file", "{chart}/Chart.yaml", "--insecure-skip-tls-verify"], "contradict each other"),  # noqa: E501
        (["{chart}", "{chart}", "--repo-dir", "{site}", "--url", "https://c.example.com", "--version", "9.0.0"], "is given twice (training-job 9.0.0)"),  # noqa: E501
    ],
)  # fmt: skip
def test_bad_input_is_refused_before_anything_is_written(
    site: Path, tmp_path: Path, args: list[str], words: str
) -> None:
    before = snapshot(site)
    given = [a.format(tmp=tmp_path, chart=CHARTS / "training-job", site=site) for a in args]
    message = refused(publish(*given, home=tmp_path / "h"))
    assert words in message, message
    assert "fix:" in message or "--" in message
    assert snapshot(site) == before


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--url", "https://ci:s3cretPW@charts.example.com"),
        ("--oci", "oci://ci:s3cretPW@registry.example.com/c"),
    ],
)
def test_credentials_in_a_url_are_refused_and_never_printed(tmp_path: Path, option: str, value: str) -> None:
    args = ["--repo-dir", tmp_path / "site", "--url", value] if option == "--url" else ["--oci", value]
    message = refused(publish(CHARTS / "mlflow", *args, home=tmp_path))
    assert message.startswith(f"error: {option}: carries credentials") and "--password-stdin" in message
    assert "s3cretPW" not in message and not (tmp_path / "site").exists()


def test_a_chart_whose_version_is_not_semver_is_named(tmp_path: Path) -> None:
    chart = tmp_path / "odd"
    shutil.copytree(CHARTS / "training-job", chart)
    bump(chart, "one.two")
    message = refused(
        publish(chart, "--repo-dir", tmp_path / "site", "--url", "https://c.example.com", home=tmp_path)
    )
    assert f"error: {chart / 'Chart.yaml'} version: 'one.two' is not a semantic version" in message, message


def test_an_umbrella_chart_with_a_relative_file_dependency_is_published_whole(tmp_path: Path) -> None:
    """`file://../mlflow` resolves from the chart's own folder, as for `helm dependency build` there:
    publish builds the dependencies in a copy beside it (removed after), not somewhere else."""
    shutil.copytree(CHARTS / "mlflow", tmp_path / "mlflow")
    umbrella = tmp_path / "platform"
    (umbrella / "templates").mkdir(parents=True)
    version = chart_version(CHARTS / "mlflow")
    (umbrella / "Chart.yaml").write_text(
        "apiVersion: v2\nname: platform\nversion: 1.0.0\n"
        f"dependencies:\n  - name: mlflow\n    version: {version}\n    repository: file://../mlflow\n"
    )
    before = sorted(p.name for p in tmp_path.iterdir())
    said = ok(
        publish(
            umbrella, "--repo-dir", tmp_path / "site", "--url", "https://c.example.com", home=tmp_path / "h"
        )
    )
    assert "published: https://c.example.com/platform-1.0.0.tgz" in said, said
    files = archive_files(tmp_path / "site" / "platform-1.0.0.tgz")
    assert files["charts/mlflow/values.yaml"] == (CHARTS / "mlflow" / "values.yaml").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "site"]), "a copy was left behind"
    assert not (umbrella / "charts").exists() and not (umbrella / "Chart.lock").exists()


def test_an_index_helm_cannot_merge_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """An index another tool wrote with a field Helm does not know: refused (exit 2) with the fix."""
    site = tmp_path / "site"
    ok(publish(CHARTS / "training-job", "--repo-dir", site, "--url", "https://c.example.com", home=tmp_path))
    text = (
        (site / "index.yaml")
        .read_text()
        .replace("    name: training-job\n", "    name: training-job\n    x-custom: 1\n")
    )
    (site / "index.yaml").write_text(text)
    before = snapshot(site)
    message = refused(
        publish(CHARTS / "mlflow", "--repo-dir", site, "--url", "https://c.example.com", home=tmp_path)
    )
    assert "x-custom" in message and "remove it from index.yaml" in message, message
    assert snapshot(site) == before
    (site / "index.yaml").unlink()
    (site / "index.yaml").mkdir()
    message = refused(
        publish(CHARTS / "mlflow", "--repo-dir", site, "--url", "https://c.example.com", home=tmp_path)
    )
    assert message.startswith("error: --repo-dir: ") and "index.yaml is not a file" in message


def test_an_index_that_is_not_a_helm_index_is_refused_and_left_alone(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.yaml").write_text("just: [some, yaml\n")
    message = refused(
        publish(CHARTS / "mlflow", "--repo-dir", site, "--url", "https://c.example.com", home=tmp_path)
    )
    assert "index.yaml does not parse" in message
    (site / "index.yaml").write_text("apiVersion: v2\nentries: []\n")
    message = refused(
        publish(CHARTS / "mlflow", "--repo-dir", site, "--url", "https://c.example.com", home=tmp_path)
    )
    assert "is not a Helm repository index" in message
    assert sorted(p.name for p in site.iterdir()) == ["index.yaml"]


def test_a_stack_whose_charts_are_not_published_is_refused_untouched(tmp_path: Path) -> None:
    empty = tmp_path / "empty-repo"
    empty.mkdir()
    with http_server(empty) as url:
        (empty / "index.yaml").write_text("apiVersion: v1\nentries: {}\n")
        stack = generate(tmp_path / "stack", "--chart-repo", url)
        before = snapshot(stack)
        site = tmp_path / "site"
        message = refused(
            publish(stack, "--repo-dir", site, "--url", "https://c.example.com", home=tmp_path / "h")
        )
    assert f"error: {stack}: its dependencies (mlflow" in message, message
    assert "publish the charts it depends on" in message
    assert snapshot(stack) == before and not site.exists()


def test_registry_errors_are_one_line_with_the_fix(tmp_path: Path) -> None:
    home = tmp_path / "h"
    chart = CHARTS / "training-job"
    with oci_registry(tmp_path / "registry") as registry:
        oci = f"oci://{registry.host}/charts"
        message = refused(publish(chart, "--oci", oci, "--plain-http", "--username", registry.username,
                                  "--password-stdin", home=home, stdin="not-the-password-4711"))  # fmt: skip
        assert "check the registry credentials" in message and "not-the-password-4711" not in message
        message = refused(publish(chart, "--oci", oci, "--plain-http", home=home))  # not logged in
        assert "check the registry credentials" in message
        message = refused(publish(chart, "--oci", oci, "--username", registry.username, "--password-stdin",
                                  home=home, stdin=registry.password))  # fmt: skip
        assert "add --plain-http" in message
        port = registry.host.rsplit(":", 1)[1]
    message = refused(publish(chart, "--oci", oci, "--plain-http", home=home), code=3)
    assert "the registry is not reachable" in message and f"127.0.0.1:{port}" in message


def test_the_password_never_reaches_a_command_line(tmp_path: Path) -> None:
    """helm wrapped by a script that records every argument list: the password is on none of them."""
    log = tmp_path / "argv.log"
    shim = tmp_path / "helm"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec {helm_path("helm4")} "$@"\n')
    shim.chmod(0o755)
    with oci_registry(tmp_path / "registry") as registry:
        proc = subprocess.run(
            [
                str(EXE),
                "publish",
                str(CHARTS / "training-job"),
                "--oci",
                f"oci://{registry.host}/charts",
                "--plain-http",
                "--username",
                registry.username,
                "--password-stdin",
                "--helm",
                str(shim),
            ],
            input=registry.password,
            capture_output=True,
            text=True,
            env=helm_env(tmp_path / "h"),
            check=False,
        )
        ok(proc)
    calls = log.read_text()
    assert "push " in calls and "--registry-config" in calls
    assert registry.password not in calls and registry.password not in proc.stdout + proc.stderr
    assert not list(tmp_path.glob("**/registry-config.json")), "the credentials file was left behind"


def test_a_failing_index_step_leaves_the_repository_as_it_was(site: Path, tmp_path: Path) -> None:
    """helm repo index fails (a wrapper makes it): the old index and archives stay, nothing new lands."""
    shim = tmp_path / "helm"
    shim.write_text(
        f'#!/bin/sh\nif [ "$1 $2" = "repo index" ]; then echo "Error: disk full" >&2; exit 1; fi\n'
        f'exec {helm_path("helm4")} "$@"\n'
    )
    shim.chmod(0o755)
    before = snapshot(site)
    proc = subprocess.run(
        [
            str(EXE),
            "publish",
            str(CHARTS / "mlflow"),
            "--repo-dir",
            str(site),
            "--url",
            "https://c.example.com",
            "--helm",
            str(shim),
        ],
        capture_output=True,
        text=True,
        env=helm_env(tmp_path / "h"),
        check=False,
    )
    message = refused(proc, code=3)
    assert "disk full" in message
    assert snapshot(site) == before
    assert sorted(p.name for p in site.iterdir()) == sorted(before)


def test_two_publishes_into_one_directory_keep_every_chart(tmp_path: Path) -> None:
    """Three CI jobs publishing into the same directory at once: each waits for the one before (an flock
    on the directory), so the index ends with every chart instead of the last writer's."""
    site = tmp_path / "site"
    site.mkdir()
    procs = [
        subprocess.Popen(
            [
                str(EXE),
                "publish",
                str(CHARTS / name),
                "--repo-dir",
                str(site),
                "--url",
                "https://c.example.com",
                "--helm",
                helm_path("helm4"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=helm_env(tmp_path / name),
        )
        for name in CHART_NAMES
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out + err
    assert sorted(index_of(site)["entries"]) == sorted(CHART_NAMES)


# --- --check-bump ------------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "charts").mkdir(parents=True)
    for name in ("mlflow", "training-job"):
        shutil.copytree(CHARTS / name, repo / "charts" / name)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "base")
    git(repo, "tag", "base")
    return repo


def check_bump(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), "publish", "--check-bump", *args], cwd=repo, capture_output=True, text=True, check=False
    )


def bump(chart: Path, version: str) -> None:
    meta = chart / "Chart.yaml"
    text = meta.read_text()
    old = f"version: {chart_version(chart)}\n"
    assert old in text
    meta.write_text(text.replace(old, f"version: {version}\n", 1))


def test_check_bump_fails_for_a_changed_chart_until_its_version_rises(checkout: Path) -> None:
    assert "every changed chart has a higher version" in ok(check_bump(checkout, "base"))
    notes = checkout / "charts" / "mlflow" / "templates" / "NOTES.txt"
    notes.write_text(notes.read_text() + "\nchanged\n")
    proc = check_bump(checkout, "base")
    assert proc.returncode == 1, proc.stderr
    assert "charts/mlflow: 1 file(s) changed since base (charts/mlflow/templates/NOTES.txt)" in proc.stderr
    assert "training-job" not in proc.stderr and "Traceback" not in proc.stderr
    bump(checkout / "charts" / "mlflow", "0.1.9")  # lower is no bump
    assert check_bump(checkout, "base").returncode == 1
    bump(checkout / "charts" / "mlflow", "0.3.0")
    ok(check_bump(checkout, "base"))
    # A committed change is seen the same way; an untracked file counts as a change too.
    git(checkout, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "bump")
    (checkout / "charts" / "training-job" / "templates" / "extra.yaml").write_text("# new\n")
    proc = check_bump(checkout, "base")
    assert proc.returncode == 1 and "charts/training-job" in proc.stderr and "mlflow" not in proc.stderr
    # A chart that did not exist at the base needs no bump; only the named charts are checked.
    ok(check_bump(checkout, "base", str(checkout / "charts" / "mlflow")))


def test_check_bump_refuses_an_unknown_ref(checkout: Path) -> None:
    message = refused(check_bump(checkout, "no-such-ref"))
    assert "--check-bump: 'no-such-ref' is not a commit here" in message and "git fetch" in message


def test_the_plugin_manifest_lists_publish() -> None:
    assert "publish" in yaml.safe_load((REPO / "plugin.yaml").read_text())["usage"]
