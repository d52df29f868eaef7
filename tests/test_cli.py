"""The helm-mlops CLI: exit codes, messages, the demo and the docs generator, run as a user runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from generator.values import check_release_name
from tests.support.charts import CHARTS, REPO
from tests.support.incli import run_cli


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "helm-mlops"
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_help_does_not_import_heavy_modules() -> None:
    heavy = ("pyhelm3", "yaml", "jsonschema", "kubernetes", "requests", "pydantic", "semver", "rich")
    code = f"import sys; import generator.cli; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_version_and_help() -> None:
    assert run("--version").stdout.startswith("helm-mlops, version ")
    result = run("--help")
    assert result.returncode == 0 and "demo" in result.stdout and "docs" in result.stdout


def test_demo_generates_lints_and_lists_the_stack(tmp_path: Path) -> None:
    out = tmp_path / "stack"
    result = run("demo", "--no-install", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "generated the full-stack preset (MLflow, 1 training job, 1 inference service)" in result.stdout
    assert "lint: helm lint --strict (helm v4." in result.stdout
    assert "lint: helm lint --strict (helm v3." in result.stdout
    assert "release full-stack consists of" in result.stdout
    assert (out / "Chart.yaml").is_file() and (out / "answers.yaml").is_file()
    assert sorted(p.name for p in (out / "charts").iterdir()) == [
        "inference-service-0.2.0.tgz",
        "mlflow-0.2.0.tgz",
        "training-job-0.2.0.tgz",
    ]


def test_unknown_preset_is_a_user_error(tmp_path: Path) -> None:
    result = run("demo", "--preset", "nope", "-o", str(tmp_path / "s"))
    assert result.returncode == 2
    assert "--preset: no preset named 'nope'" in result.stderr and "full-stack" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "s").exists()


def test_bad_answers_are_all_listed_with_paths(tmp_path: Path) -> None:
    out = tmp_path / "s"
    result = run(
        "demo", "--no-install", "-o", str(out), "--set", "mlflow.replicas=two", "--set", "name=Bad_Name"
    )
    assert result.returncode == 2, result.stderr
    assert "2 problem(s)" in result.stderr
    assert 'mlflow.replicas: "two" is not an integer' in result.stderr
    assert 'name: "Bad_Name" is not a name: a lower-case letter first' in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_rules_across_answers_name_the_field(tmp_path: Path) -> None:
    out = tmp_path / "s"
    result = run("demo", "--no-install", "-o", str(out), "--set", "mlflow.replicas=2")
    assert result.returncode == 2
    assert "mlflow.replicas: must be 1 with backendStore.type sqlite (got 2)" in result.stderr
    assert not out.exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run("--debug", "demo", "--preset", "nope", "-o", str(tmp_path / "s"))
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_docs_check_detects_stale_readme_and_undocumented_values(tmp_path: Path) -> None:
    chart = tmp_path / "mlflow"
    shutil.copytree(CHARTS / "mlflow", chart)
    assert run("docs", "--check", str(chart)).returncode == 0
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace("Server replicas.", "How many server pods."))
    stale = run("docs", "--check", str(chart))
    assert stale.returncode == 4 and "out of date" in stale.stderr
    assert run("docs", str(chart)).returncode == 0
    assert "How many server pods." in (chart / "README.md").read_text()
    values.write_text(values.read_text() + "undocumentedKey: 1\n")
    missing = run("docs", str(chart))
    assert missing.returncode == 2 and "undocumentedKey" in missing.stderr


def test_missing_kubeconfig_is_a_user_error(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "helm-mlops"
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "nope")}
    out = tmp_path / "stack"
    argv = [str(exe), "demo", "-o", str(out)]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 2 and "KUBECONFIG" in result.stderr and "does not exist" in result.stderr
    explicit = run("demo", "-o", str(out), "--kubeconfig", str(tmp_path / "nope"))
    assert explicit.returncode == 2 and "--kubeconfig" in explicit.stderr
    assert not out.exists()  # the cluster is checked before anything is written


BAD_RELEASES = [
    ("MyRelease", "DNS-1123"),
    ("my_release", "DNS-1123"),
    ("a" * 54, "54 characters"),
    ("", "empty"),
]
RELEASE_COMMANDS = [
    ["train", "{r}", "--script", "missing.py"],
    ["install", "{r}", "--preset", "quickstart"],
    ["upgrade", "{r}", "--preset", "quickstart"],
    ["status", "{r}"],
    ["logs", "{r}", "training-job"],
    ["rollback", "{r}"],
    ["uninstall", "{r}"],
    ["history", "{r}"],
    ["test", "{r}"],
    ["restart", "{r}"],
    ["ui", "{r}"],
    ["predict", "{r}", "iris", "--data", "[1]"],
    ["template", "stack", "--release", "{r}"],
]


@pytest.mark.parametrize(("release", "why"), BAD_RELEASES, ids=["upper", "underscore", "54-chars", "empty"])
def test_an_invalid_release_name_is_input_for_every_command(release: str, why: str, tmp_path: Path) -> None:
    """Exit 2 naming RELEASE and helm's rule, before any cluster or helm is asked (helm used to print
    its raw regex twice, exit 3). In-process: 13 commands x 4 names."""
    for argv in RELEASE_COMMANDS:
        result = run_cli(*[a.replace("{r}", release) for a in argv], cwd=tmp_path)
        assert result.returncode == 2, (argv, result.stderr)
        assert f"RELEASE: {release!r} is not a valid release name" in result.stderr, argv
        assert why in result.stderr and "at most 53 characters" in result.stderr, argv
        assert "regex" not in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
    # The check itself: helm's rule, 53 characters allowed.
    check_release_name("a" * 53)
    check_release_name("my.release-1")


def test_messages_name_what_is_wrong(tmp_path: Path) -> None:
    """Issue 15 (14): docs --check on a missing folder was a FileNotFoundError traceback; demo's old
    --chart option (gone since demo generates presets) is a usage error, never a missing file."""
    docs = run_cli("docs", "--check", str(tmp_path / "nonexistent"), cwd=tmp_path)
    assert docs.returncode == 2 and "CHART_DIR:" in docs.stderr and "is not a chart" in docs.stderr
    for chart in ("inference-service", "training-job", "bogus"):
        demo = run_cli("demo", "--chart", chart, "--no-install", cwd=tmp_path)
        assert demo.returncode == 2 and "No such option '--chart'" in demo.stderr
    assert list(tmp_path.iterdir()) == []


def test_runtime_serve_passes_workers_to_the_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`runtime serve --workers N` reaches the runtime's own --workers; without it the runtime picks
    (one worker per CPU it may use). The exec is caught: argv as the runtime would receive it."""
    model = tmp_path / "m.pkl"
    model.write_bytes(b"not loaded: the CLI checks options, the runtime loads")
    execs: list[list[str]] = []

    def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        execs.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", fake_execve)
    for extra in (
        ["--workers", "3"],
        [],
        ["--workers", "1", "--reference", "ref.csv", "--feedback"],
        ["--workers", "auto", "--feedback"],
    ):
        result = run_cli("runtime", "serve", "--model", model, "--trust-model", *extra, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    with_workers, without, monitored, auto = execs
    assert with_workers[1:3] == ["-m", "hm_runtime"]
    assert with_workers[with_workers.index("--workers") + 1] == "3"
    assert "--workers" not in without
    assert monitored[monitored.index("--workers") + 1] == "1" and "--feedback" in monitored
    assert auto[auto.index("--workers") + 1] == "auto"  # the runtime's own auto: 1 with --feedback


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--workers", "0"], "Invalid value for '--workers': 0 is not 1 or more (or auto)"),
        (["--workers", "two"], "Invalid value for '--workers': 'two' is not a count (1 or more) nor auto"),
        (
            ["--workers", "2", "--reference", "ref.csv"],
            "error: --workers: --workers 2 with --reference: model monitoring keeps one worker",
        ),
        (
            ["--workers", "4", "--reference", "ref.csv", "--feedback"],
            "error: --workers: --workers 4 with --reference and --feedback: model monitoring keeps one",
        ),
        (
            ["--workers", "2", "--feedback"],
            "fix: leave --workers out (1 with --feedback) or pass --workers 1",
        ),
    ],
    ids=["zero", "not-a-number", "reference", "reference-feedback", "feedback"],
)
def test_runtime_serve_refuses_workers_it_cannot_run(
    extra: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 2 naming --workers, before the runtime starts (it would exit 2 for the same reasons)."""

    def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        raise SystemExit(f"the runtime would have started: {argv}")  # exit 1, never replaces pytest

    monkeypatch.setattr(os, "execve", fake_execve)
    model = tmp_path / "m.pkl"
    model.write_bytes(b"never loaded")
    result = run_cli("runtime", "serve", "--model", model, "--trust-model", *extra, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert says in " ".join(result.stderr.split()), result.stderr


def test_runtime_check_refuses_a_negative_worker_count(tmp_path: Path) -> None:
    """ServeRequest built without click's check (the library API): a negative count is refused, 0 is
    auto."""
    from generator.errors import UserError
    from generator.runtime import ServeRequest, check

    model = tmp_path / "m.pkl"
    model.write_bytes(b"never loaded")
    with pytest.raises(UserError) as refused:
        check(ServeRequest(model=str(model), trust_model=True, workers=-1))
    assert refused.value.field == "--workers" and "must be 1 or more (or auto), not -1" in str(refused.value)
    assert check(ServeRequest(model=str(model), trust_model=True, workers=8)) == "sklearn"
    assert check(ServeRequest(model=str(model), trust_model=True, workers=0)) == "sklearn"  # 0: auto
