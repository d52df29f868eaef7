"""Every expected failure ends in one line (plus its fix) and an exit code, never a traceback unless
--debug (parsed, not scanned from argv) or HELM_DEBUG=1. The cases are the ones found by trying the CLI
as a new user: an unreachable API server in status, logs, train's preflight and demo; a malformed
--set; a failed embedded-cluster script; a helm that is missing, too old or not helm; a bad kubeconfig;
and an unexpected exception, which says it is a bug."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.charts import REPO
from tests.support.servers import free_port

EXE = str(Path(sys.executable).parent / "helm-mlops")


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("HELM_DEBUG", "KUBECONFIG")}
    return subprocess.run(
        [EXE, *args], cwd=cwd, capture_output=True, text=True, env={**full, **(env or {})}, check=False
    )


def clean(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout
    return result.stderr


@pytest.fixture
def dead_cluster(tmp_path: Path) -> tuple[Path, str]:
    """A kubeconfig whose API server address has nothing listening."""
    server = f"https://127.0.0.1:{free_port()}"
    path = tmp_path / "kubeconfig"
    path.write_text(
        textwrap.dedent(f"""\
        apiVersion: v1
        kind: Config
        clusters: [{{name: c, cluster: {{server: "{server}", insecure-skip-tls-verify: true}}}}]
        users: [{{name: u, user: {{token: not-a-secret}}}}]
        contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
        current-context: x
        """)
    )
    return path, server


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text("print('hi')\n")
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["status", "r"],
        ["logs", "r", "training-job"],
        ["demo", "-o", "{tmp}/stack"],
        ["train", "r", "--gpus", "1"],
    ],
    ids=["status", "logs", "demo", "train-preflight"],
)
def test_an_unreachable_api_server_is_named(
    args: list[str], dead_cluster: tuple[Path, str], script: Path, tmp_path: Path
) -> None:
    kubeconfig, server = dead_cluster
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if args[0] == "train":
        args = [*args, "--script", str(script)]
    stderr = clean(run(*args, "--kubeconfig", str(kubeconfig)), 3)
    assert f"the Kubernetes API server at {server} is not reachable" in stderr
    assert "fix: check that the cluster is running" in stderr
    assert len(stderr.strip().splitlines()) <= 3, stderr


def test_render_to_with_an_unreachable_cluster_skips_the_preflight(
    dead_cluster: tuple[Path, str], script: Path, tmp_path: Path
) -> None:
    kubeconfig, server = dead_cluster
    result = run(
        "train", "r", "--script", str(script), "--gpus", "1", "--kubeconfig", str(kubeconfig),
        "--render-to", str(tmp_path / "out"),
    )  # fmt: skip
    clean(result, 0)
    assert (
        f"preflight skipped: list nodes (GPU preflight): the Kubernetes API server at {server}"
        in result.stdout
    )
    assert (tmp_path / "out" / "values.yaml").is_file()


def test_a_kubeconfig_that_is_not_one(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncurrent-context: nowhere\n")
    stderr = clean(run("status", "r", "--kubeconfig", str(bad)), 2)
    assert "--kubeconfig:" in stderr and "is not a usable kubeconfig" in stderr and "fix:" in stderr


@pytest.mark.parametrize(
    ("flag", "item", "named"),
    [
        ("--set", "job.backoffLimit", "--set job.backoffLimit: key 'backoffLimit' has no value"),
        ("--set", "a[x]=1", "--set a[x]=1: list index [x] must be a non-negative integer"),
        ("--set", "env={a,b", "--set env={a,b: a list `{...}` is missing its closing `}`"),
        ("--set-json", "env=[{bad", "--set-json env=[{bad: '[{bad' is not JSON"),
        (
            "--set-file",
            "script.content=/does/not/exist",
            "--set-file script.content=/does/not/exist: cannot read",
        ),
    ],
)
def test_malformed_set_flags_name_the_flag(flag: str, item: str, named: str, script: Path) -> None:
    stderr = clean(run("train", "r", "--script", str(script), flag, item, "--render-to", "/tmp/never"), 2)
    assert named in stderr, stderr
    assert not Path("/tmp/never").exists()


def test_a_set_value_is_a_string_the_schema_checks(script: Path, tmp_path: Path) -> None:
    # `a=[x` is the string "[x" under helm's rules (no YAML parsing): the schema names the key.
    stderr = clean(run("train", "r", "--script", str(script), "--set", "job.backoffLimit=[x"), 2)
    assert "job.backoffLimit: '[x' is not of type 'integer'" in stderr


def test_a_failed_embedded_cluster_script_is_a_tool_error(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "HELM_MLOPS_CACHE": str(tmp_path / "empty-cache")}
    stderr = clean(run("status", "r", env=env), 3)
    assert "could not start the embedded cluster (hack/cluster.sh up)" in stderr
    assert "cluster binaries missing" in stderr and "fix: run `make cluster-tools`" in stderr


def test_debug_is_parsed_not_scanned(script: Path) -> None:
    env = {"HELM_MLOPS_HELM": "/nonexistent/helm"}
    # --debug is the value of --arg here, so the error stays one line.
    stderr = clean(run("train", "r", "--script", str(script), "--arg", "--debug", env=env), 2)
    assert "--helm (or HELM_MLOPS_HELM): helm not found (tried /nonexistent/helm)" in stderr
    shown = run("--debug", "train", "r", "--script", str(script), env=env)
    assert shown.returncode != 0 and "Traceback" in shown.stderr and "UserError" in shown.stderr
    from_helm = run("train", "r", "--script", str(script), env={**env, "HELM_DEBUG": "true"})
    assert "Traceback" in from_helm.stderr


@pytest.mark.parametrize(
    ("prints", "message"),
    [
        ("v3.16.4", "is Helm v3.16.4; helm-mlops needs Helm 3.17 or newer"),
        ("not a version", "does not behave like helm"),
    ],
)
def test_old_or_wrong_helm_is_refused(prints: str, message: str, tmp_path: Path, script: Path) -> None:
    # Stand-in binaries that answer `helm version` like an old helm, and like something else.
    fake = tmp_path / "helm"
    fake.write_text(f"#!/bin/sh\necho '{prints}'\n")
    fake.chmod(0o755)
    stderr = clean(run("train", "r", "--script", str(script), "--helm", str(fake)), 2)
    assert f"--helm (or HELM_MLOPS_HELM): {fake} {message}" in stderr and "fix:" in stderr


def test_an_unexpected_exception_says_it_is_a_bug() -> None:
    code = textwrap.dedent("""\
        import sys
        from generator.cli import cli, main

        @cli.command("explode")
        def explode() -> None:
            raise KeyError("boom")

        main(sys.argv[1:])
    """)
    result = subprocess.run(
        [sys.executable, "-c", code, "explode"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "unexpected KeyError: 'boom'" in result.stderr
    assert "this is a bug in helm-mlops" in result.stderr and "--debug" in result.stderr
    debug = subprocess.run(
        [sys.executable, "-c", code, "--debug", "explode"], capture_output=True, text=True, check=False
    )
    assert "Traceback" in debug.stderr and "KeyError: 'boom'" in debug.stderr


# Found by trying the CLI adversarially; each was an "unexpected ..." bug line (exit 1) or a hang.
@pytest.mark.parametrize(
    ("case", "code", "words"),
    [
        ("binary-script", 2, ["--script:", "is not UTF-8 text"]),
        ("binary-requirements", 2, ["--requirements-file:", "is not UTF-8 text"]),
        ("script-directory", 2, ["--script:", "is a directory"]),
        ("garbage-kubeconfig", 2, ["--kubeconfig:", "is not a usable kubeconfig"]),
        ("missing-context", 2, ["--kube-context:", "nosuch"]),
        ("unwritable-render-to", 2, ["--render-to:", "cannot"]),
        ("helm-prints-no-manifests", 3, ["is not Kubernetes manifests", "fix: point --helm"]),
        ("helm-not-executable", 2, ["is not executable"]),
        ("sweep-types", 2, ["parameters[0] (lr): values[0] must be a number", "fix: a sweep is"]),
        ("sweep-huge-grid", 2, ["more than 10000 points"]),
        ("sweep-schema", 2, ["sweep.strategy: 'bayes' is not one of"]),
        ("demo-without-preset", 2, ["--preset:", "no preset named 'training-job'", "full-stack"]),
        ("chart-path", 2, ["--preset:", "no preset named '../values-presets/quickstart'"]),
        ("docs-not-a-chart", 2, ["CHART_DIR:", "is not a chart"]),
        ("predict-bad-url", 2, ["--url:", "is not an http(s) URL"]),
        ("serve-bad-python", 2, ["--python:", "cannot run"]),
    ],
)
def test_adversarial_inputs_are_clean_errors(
    case: str, code: int, words: list[str], tmp_path: Path, script: Path, dead_cluster: tuple[Path, str]
) -> None:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    fake_helm = tmp_path / "fakehelm"
    fake_helm.write_text("#!/bin/sh\necho v9.9.9\n")
    fake_helm.chmod(0o755)
    not_executable = tmp_path / "helm-noexec"
    not_executable.write_text("#!/bin/sh\n")
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("clusters: [unclosed\n")
    sweeps = {
        "sweep-types": "parameters:\n  - {name: lr, type: float, values: [a, b]}\n",
        "sweep-huge-grid": "parameters:\n  - {name: lr, type: float, min: 0, max: 1, count: 1000000000}\n",
        "sweep-schema": "strategy: bayes\nparameters:\n  - {name: lr, type: float, values: [0.1]}\n",
    }
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(sweeps.get(case, ""))
    out = str(tmp_path / "out")
    argv = {
        "binary-script": ["train", "r", "--script", str(binary), "--render-to", out],
        "binary-requirements": ["train", "r", "--script", str(script), "--requirements-file", str(binary)],
        "script-directory": ["train", "r", "--script", str(tmp_path), "--render-to", out],
        "garbage-kubeconfig": ["status", "r", "--kubeconfig", str(garbage)],
        "missing-context": ["status", "r", "--kubeconfig", str(dead_cluster[0]), "--kube-context", "nosuch"],
        "unwritable-render-to": ["train", "r", "--script", str(script), "--render-to", "/proc/self/out"],
        "helm-prints-no-manifests": [
            "train",
            "r",
            "--script",
            str(script),
            "--render-to",
            out,
            "--helm",
            str(fake_helm),
        ],
        "helm-not-executable": ["train", "r", "--script", str(script), "--helm", str(not_executable)],
        "sweep-types": ["sweep", "plan", "-f", str(sweep)],
        "sweep-huge-grid": ["sweep", "plan", "-f", str(sweep)],
        "sweep-schema": ["sweep", "plan", "-f", str(sweep)],
        "demo-without-preset": ["demo", "--preset", "training-job", "--no-install", "-o", out],
        "chart-path": ["demo", "--preset", "../values-presets/quickstart", "--no-install", "-o", out],
        "docs-not-a-chart": ["docs", "--check", str(tmp_path)],
        "predict-bad-url": ["runtime", "predict", "--url", "notaurl", "--input", "[1, 2]"],
        "serve-bad-python": [
            "runtime",
            "serve",
            "--model",
            str(binary),
            "--format",
            "onnx",
            "--python",
            "/etc/hostname",
        ],
    }[case]
    result = subprocess.run([EXE, *argv], capture_output=True, text=True, timeout=60, check=False)
    stderr = clean(result, code)
    for word in words:
        assert word in stderr, stderr
    assert not Path(out).exists()


def test_debug_keeps_the_exit_code(script: Path) -> None:
    shown = run("--debug", "train", "r", "--script", str(script) + ".missing")
    assert shown.returncode == 2 and "Traceback" in shown.stderr and "--script:" in shown.stderr


def test_the_plugin_namespace_and_context_reach_the_cli(dead_cluster: tuple[Path, str], script: Path) -> None:
    # helm hands a plugin its -n and --kube-context as HELM_NAMESPACE and HELM_KUBECONTEXT.
    env = {"HELM_NAMESPACE": "team-a", "HELM_KUBECONTEXT": "nosuch"}
    result = run("status", "r", "--kubeconfig", str(dead_cluster[0]), env=env)
    assert result.returncode == 2 and "nosuch" in result.stderr
    env = {"HELM_NAMESPACE": "team-a"}
    reached = run("status", "r", "--kubeconfig", str(dead_cluster[0]), env=env)
    assert reached.returncode == 3 and "of r in namespace team-a" in reached.stderr
