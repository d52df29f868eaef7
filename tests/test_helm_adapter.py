"""The helm adapter against the real Helm 4, 3.18 and 3.17: values errors become UserError naming the
values, pyhelm3's faults are repaired for each major version (each fault shown to be real first), and
registries: a password travels on stdin, never on the command line, and `--plain-http` reaches helm."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from generator.errors import ToolError, UserError
from generator.helm.adapter import Completed, Helm, repair_args, subprocess_runner
from generator.helm.binary import HelmBinary, find_helm
from tests.support.charts import CHARTS, helm_path
from tests.support.servers import oci_registry

HELMS = ["helm4", "helm3", "helm3.17"]


class Recorder:
    """The subprocess runner, recording every argument list and stdin."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bytes | None]] = []

    def __call__(self, argv: list[str], stdin: bytes | None) -> Completed:
        self.calls.append((argv, stdin))
        return subprocess_runner(argv, stdin)


def adapter(name: str) -> tuple[Helm, Recorder]:
    recorder = Recorder()
    return Helm(find_helm(helm_path(name)), runner=recorder), recorder


V3 = HelmBinary("helm", "v3.18.0")
V4 = HelmBinary("helm", "v4.1.4")


@pytest.mark.parametrize(
    ("binary", "given", "expected"),
    [
        (V3, ["upgrade", "r", "c", "--rollback-on-failure"], ["upgrade", "r", "c", "--atomic"]),
        (V4, ["upgrade", "r", "c", "--atomic"], ["upgrade", "r", "c", "--rollback-on-failure"]),
        (
            V4,
            ["upgrade", "r", "c", "--force"],
            ["upgrade", "r", "c", "--force-replace", "--server-side=false"],
        ),
        (
            V4,
            ["rollback", "r", "--force", "--server-side=true"],
            ["rollback", "r", "--force-replace", "--server-side=true"],
        ),
        (V3, ["rollback", "r", "--force-replace"], ["rollback", "r", "--force"]),
        (V4, ["list", "--all", "--output", "json"], ["list", "--output", "json"]),
        (V3, ["list", "--all"], ["list", "--all"]),
        (V4, ["repo", "update", "--fail-on-repo-update-fail", "x"], ["repo", "update", "x"]),
        (
            V3,
            ["upgrade", "r", "c", *"--disable-openapi-validation"],
            ["upgrade", "r", "c", "--disable-openapi-validation"],
        ),
        (V4, ["template", "r", "c", "--force"], ["template", "r", "c", "--force"]),  # only upgrade/rollback
    ],
)
def test_repair_args(binary: HelmBinary, given: list[str], expected: list[str]) -> None:
    assert repair_args(given, binary) == expected


@pytest.mark.parametrize("name", HELMS)
def test_values_errors_are_user_errors_naming_the_source(name: str) -> None:
    helm, recorder = adapter(name)
    chart = CHARTS / "training-job"
    with pytest.raises(UserError) as schema:
        helm.template(chart, "r", {"script": {"content": "x"}, "notAValue": 1}, source="my.yaml")
    assert schema.value.field == "my.yaml" and "notAValue" in str(schema.value)
    with pytest.raises(UserError) as rule:  # the chart's own `fail` check
        helm.template(chart, "r", {"job": {"backoffLimit": 1}}, source="my.yaml")
    assert rule.value.field == "my.yaml" and "Invalid values for the training-job chart" in str(rule.value)
    with pytest.raises(UserError) as lint:
        helm.lint(chart, {"notAValue": 1}, source="lint.yaml")
    assert lint.value.field == "lint.yaml"
    # Values travel on stdin, never as a file on the command line.
    argv, stdin = recorder.calls[0]
    assert argv[argv.index("--values") + 1] == "-" and b"notAValue" in (stdin or b"")


@pytest.mark.parametrize("name", HELMS)
def test_other_helm_failures(name: str, tmp_path: Path) -> None:
    helm, _ = adapter(name)
    with pytest.raises(UserError) as missing:
        helm.template(tmp_path / "no-such-chart", "r", {})
    assert "not found" in str(missing.value)
    broken = tmp_path / "broken"
    (broken / "templates").mkdir(parents=True)
    (broken / "Chart.yaml").write_text("apiVersion: v2\nname: broken\nversion: 0.1.0\n")
    (broken / "templates" / "cm.yaml").write_text("kind: ConfigMap\nmetadata: {name: {{ .Values.x.y }}}\n")
    with pytest.raises(ToolError) as tool:  # a chart bug, not a values problem
        helm.template(broken, "r", {})
    assert "helm template failed" in str(tool.value)


@pytest.fixture
def chart_repo(tmp_path: Path) -> Iterator[str]:
    """A chart repository over HTTP: the training-job chart packaged, with its index.yaml."""
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run([helm_path("helm4"), "package", str(CHARTS / "training-job"), "-d", str(root)], check=True)
    subprocess.run([helm_path("helm4"), "repo", "index", str(root)], check=True)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.mark.parametrize("name", HELMS)
def test_repo_update(name: str, helm_home: Path, chart_repo: str) -> None:
    helm, _recorder = adapter(name)
    helm.run(["repo", "add", "local", chart_repo])
    if name == "helm4":  # the fault: pyhelm3's flag, which Helm 4 no longer has
        raw = subprocess.run(
            [helm.binary.path, "repo", "update", "--fail-on-repo-update-fail", "local"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert raw.returncode != 0 and "unknown flag" in raw.stderr
    helm.repo_update("local")
    assert (helm_home / "repo-cache" / "local-index.yaml").is_file()


@pytest.mark.parametrize("name", HELMS)
def test_oci_registry_login_push_pull_over_plain_http(name: str, helm_home: Path, tmp_path: Path) -> None:
    helm, recorder = adapter(name)
    archive = helm.package(CHARTS / "training-job", tmp_path / "pkg")
    assert archive.is_file()
    with oci_registry(tmp_path / "registry") as registry:
        with pytest.raises(UserError):  # a wrong password is the user's to fix
            helm.registry_login(registry.host, registry.username, "wrong", plain_http=True)
        helm.registry_login(registry.host, registry.username, registry.password, plain_http=True)
        helm.push(archive, f"oci://{registry.host}/charts", plain_http=True)  # the pull below proves it
        out = tmp_path / "pulled"
        out.mkdir()
        version = archive.name.removeprefix("training-job-").removesuffix(".tgz")
        helm.pull(f"oci://{registry.host}/charts/training-job", out, version=version, plain_http=True)
        assert [p.name for p in out.iterdir()] == [archive.name]
    for argv, _stdin in recorder.calls:
        assert registry.password not in " ".join(argv)
    logins = [(argv, stdin) for argv, stdin in recorder.calls if argv[1:3] == ["registry", "login"]]
    assert logins[-1][1] == registry.password.encode() and "--password-stdin" in logins[-1][0]
