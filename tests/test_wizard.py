"""`helm-mlops init`: the wizard driven through a real pseudo-terminal (pexpect) with key presses, its
refusals without a terminal or over an existing file, `--yes`, Ctrl-C, and the question flow through a
scripted `Ask` for the rules that need no terminal."""

from __future__ import annotations

import importlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pexpect
import pytest
import yaml

from generator import answers, generate, wizard
from tests.support.charts import REPO

TIMEOUT = 30  # the machine is slow and shared
VERSIONS = "3.17.2,3.16.1"  # what the wizard offers (HELM_MLOPS_WIZARD_VERSIONS): no network in tests
DOWN, ENTER, CTRL_C, CTRL_U = "\x1b[B", "\r", "\x03", "\x15"
ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[()][A-Z0-9]|[=>])")


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ)
    out.pop("HELM_MLOPS_CHARTS", None)
    out.update(
        PYTHONPATH=str(REPO),
        TERM="xterm",
        NO_COLOR="1",
        PROMPT_TOOLKIT_NO_CPR="1",  # nobody answers cursor-position requests in a pexpect terminal
        HELM_MLOPS_WIZARD_VERSIONS=VERSIONS,
    )
    out.update(extra)
    return out


class Term:
    """A helm-mlops process on a pseudo-terminal; every failure shows what the terminal showed."""

    def __init__(self, cwd: Path, *args: str, extra_env: dict[str, str] | None = None) -> None:
        self.log = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "generator", "init", *args],
            cwd=str(cwd),
            env=env(**(extra_env or {})),
            dimensions=(40, 120),
            timeout=TIMEOUT,
            encoding="utf-8",
            codec_errors="replace",
        )
        self.child.logfile_read = self.log

    def transcript(self) -> str:
        return ANSI.sub("", self.log.getvalue())

    def expect(self, text: str) -> None:
        try:
            self.child.expect_exact(text)
        except (pexpect.TIMEOUT, pexpect.EOF) as exc:
            self.child.close(force=True)
            raise AssertionError(
                f"never saw {text!r} ({type(exc).__name__}); the terminal showed:\n{self.transcript()}"
            ) from None

    def answer(self, question: str, text: str) -> None:
        """Type `text` over whatever the question pre-filled."""
        self.expect(question)
        self.child.send(CTRL_U + text + ENTER)

    def keep(self, question: str) -> None:
        """Accept the pre-filled answer (or the highlighted choice)."""
        self.expect(question)
        self.child.send(ENTER)

    def choose(self, question: str, downs: int) -> None:
        self.expect(question)
        self.child.send(DOWN * downs + ENTER)

    def confirm(self, question: str, yes: bool) -> None:
        self.expect(question)
        self.child.send("y" if yes else "n")

    def finish(self) -> int:
        try:
            self.child.expect(pexpect.EOF)
        except pexpect.TIMEOUT:
            self.child.close(force=True)
            raise AssertionError(f"init did not end; the terminal showed:\n{self.transcript()}") from None
        self.child.close()
        status = self.child.exitstatus
        assert status is not None, f"killed by signal {self.child.signalstatus}:\n{self.transcript()}"
        return int(status)


def read_answers(path: Path) -> dict[str, Any]:
    text = path.read_text()
    assert text.startswith("# helm-mlops answers (helm-mlops/v1)"), text[:200]
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    answers.check(data)
    return data


# Through the terminal ---------------------------------------------------------------------------------


def test_full_flow_with_a_training_job_and_an_inference_service(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('training')\n")
    out = tmp_path / "answers.yaml"
    t = Term(tmp_path, "-o", str(out))
    t.answer("Stack name", "vision")
    t.answer("Namespace", "ml-team")
    t.confirm("Deploy MLflow", True)
    t.choose("MLflow version", 1)  # 3.16.1, the second of the offered list
    t.choose("backend store", 2)  # postgresql, external
    t.answer("postgresql host", "db.example.com")
    t.answer("Database name", "tracking")
    t.answer("Database user", "mlflow")
    t.answer("database password", "pg-credentials")
    t.choose("artifact store", 3)  # s3
    t.answer("Bucket", "ml-artifacts")
    t.answer("Region", "eu-west-1")
    t.answer("access keys", "s3-keys")
    t.answer("MLflow server replicas", "2")
    t.confirm("through an Ingress", True)
    t.answer("Host name", "mlflow.example.com")
    t.confirm("(TLS)", True)
    t.answer("ClusterIssuer", "letsencrypt")
    t.confirm("basic auth", True)

    t.confirm("Add a training job?", True)
    t.answer("Job name", "train-resnet")
    t.keep("What does the job run?")  # a Python script
    t.answer("Script file", "train.py")
    t.answer("pip requirements", "torch==2.5.1, torchvision")
    t.answer("CPU per pod", "4")
    t.answer("Memory per pod", "16Gi")
    t.answer("GPUs per pod", "1")
    t.answer("Image with CUDA", "")  # refused: a GPU job needs an image
    t.expect("GPU(s) requested: set a CUDA-capable image")
    t.child.send(CTRL_U + "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime" + ENTER)
    t.confirm("Add a training job?", False)

    t.confirm("Add an inference service?", True)
    t.answer("Service name", "classifier")
    t.keep("Runtime")  # fastapi
    t.answer("Model URI", "models:/classifier@champion")
    t.keep("Model format")  # from the file name: an MLflow model
    t.confirm("Trust it?", True)
    t.confirm("Autoscale", True)
    t.answer("Fewest replicas", "2")
    t.answer("Most replicas", "5")
    t.answer("Target CPU", "60")
    t.confirm("Add an inference service?", False)
    t.confirm("Monitor the stack", True)
    t.answer("Namespace Prometheus runs in", "Observability")  # not a DNS label: refused in place
    t.expect("is not a DNS-1123 label")
    t.child.send(CTRL_U + "observability" + ENTER)

    t.expect("Answers")  # the summary table
    t.confirm("Write answers to", True)
    t.expect("next: helm-mlops generate --answers")
    assert t.finish() == 0, t.transcript()
    assert "helm-mlops generate --answers" in t.transcript() and "-o vision/" in t.transcript()

    data = read_answers(out)
    assert data["name"] == "vision"
    assert data["global"]["namespace"] == "ml-team"
    assert data["monitoring"]["enabled"] is True
    assert data["monitoring"]["prometheusNamespace"] == "observability"
    mlflow = data["mlflow"]
    assert mlflow["enabled"] is True
    assert mlflow["version"] == "3.16.1"
    assert mlflow["backendStore"] == {
        "type": "postgresql",
        "host": "db.example.com",
        "database": "tracking",
        "user": "mlflow",
        "existingSecret": "pg-credentials",
    }
    assert mlflow["artifactStore"] == {
        "type": "s3",
        "bucket": "ml-artifacts",
        "region": "eu-west-1",
        "existingSecret": "s3-keys",
    }
    assert mlflow["replicas"] == 2
    assert mlflow["ingress"]["enabled"] is True
    assert mlflow["ingress"]["host"] == "mlflow.example.com"
    assert mlflow["ingress"]["tls"] == {"enabled": True, "certManagerIssuer": "letsencrypt"}
    assert mlflow["auth"]["enabled"] is True
    assert data["training"]["jobs"] == [
        {
            "name": "train-resnet",
            "script": {"file": "train.py"},
            "requirements": ["torch==2.5.1", "torchvision"],
            "cpu": "4",
            "memory": "16Gi",
            "gpus": 1,
            "image": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        }
    ]
    assert data["inference"]["services"] == [
        {
            "name": "classifier",
            "runtime": "fastapi",
            "model": {"uri": "models:/classifier@champion", "trust": True},
            "hpa": {"enabled": True, "minReplicas": 2, "maxReplicas": 5, "targetCPU": 60},
        }
    ]
    # generate takes the file as it is: the script path is relative to the answers file.
    loaded = generate.load(preset=None, answers_file=str(out), sets=[])
    assert loaded.answers["training"]["jobs"][0]["script"]["content"] == "print('training')\n"


def test_bad_answers_show_generates_message_and_are_asked_again(tmp_path: Path) -> None:
    out = tmp_path / "answers.yaml"
    t = Term(tmp_path, "-o", str(out))
    t.answer("Stack name", "Bad_Name")
    t.expect('name: "Bad_Name" is not a name')
    t.child.send(CTRL_U + "good-name" + ENTER)
    t.answer("Namespace", "team")
    t.confirm("Deploy MLflow", False)
    t.confirm("Add a training job?", True)
    t.answer("Job name", "mlflow")  # reserved
    t.expect("training.jobs[0].name: mlflow is reserved")
    t.child.send(CTRL_U + "nightly" + ENTER)
    t.choose("What does the job run?", 1)  # a command in an image
    t.answer("Image", "")
    t.answer("Command", "")  # neither a script nor a command
    t.expect("training.jobs[0]: needs script (file or content) or image and command")
    t.child.send(CTRL_U + "python -m 'my trainer'" + ENTER)
    t.answer("pip requirements", "")
    t.answer("CPU per pod", "lots")
    t.expect('training.jobs[0].cpu: "lots" is not a Kubernetes quantity')
    t.child.send(CTRL_U + "500m" + ENTER)
    t.answer("Memory per pod", "")
    t.answer("GPUs per pod", "two")
    t.expect('training.jobs[0].gpus: "two" is not an integer')
    t.child.send(CTRL_U + "0" + ENTER)
    t.confirm("Add a training job?", False)
    t.confirm("Add an inference service?", True)
    t.answer("Service name", "scorer")
    t.keep("Runtime")
    t.answer("Model URI", "pvc://models/scorer.onnx")
    t.keep("Model format")  # onnx, from the file name: not code, so no trust question
    t.confirm("Autoscale", True)
    t.answer("Fewest replicas", "3")
    t.answer("Most replicas", "2")
    t.expect("inference.services[0].hpa.maxReplicas: must be >= minReplicas (3)")
    t.child.send(CTRL_U + "4" + ENTER)
    t.keep("Target CPU")
    t.confirm("Add an inference service?", False)
    t.confirm("Monitor the stack", False)
    t.confirm("Write answers to", True)
    assert t.finish() == 0, t.transcript()

    data = read_answers(out)
    assert data["name"] == "good-name"
    assert data["mlflow"]["enabled"] is False
    job = data["training"]["jobs"][0]
    assert job["name"] == "nightly"
    assert job["command"] == ["python", "-m", "my trainer"]
    assert job["cpu"] == "500m" and job["gpus"] == 0
    assert "image" not in job and "requirements" not in job and "memory" not in job
    svc = data["inference"]["services"][0]
    assert svc["model"] == {"uri": "pvc://models/scorer.onnx"}
    assert svc["hpa"]["minReplicas"] == 3 and svc["hpa"]["maxReplicas"] == 4


@pytest.mark.parametrize("where", ["backend store", "Write answers to"])
def test_ctrl_c_writes_nothing_and_exits_130(tmp_path: Path, where: str) -> None:
    out = tmp_path / "answers.yaml"
    t = Term(tmp_path, "-o", str(out))
    t.answer("Stack name", "stack")
    t.keep("Namespace")
    if where == "Write answers to":
        t.confirm("Deploy MLflow", False)
        t.confirm("Add a training job?", False)
        t.confirm("Add an inference service?", False)
        t.confirm("Monitor the stack", False)
    else:
        t.confirm("Deploy MLflow", True)
        t.keep("MLflow version")
    t.expect(where)
    t.child.send(CTRL_C)
    assert t.finish() == 130, t.transcript()
    assert "aborted" in t.transcript()
    assert not out.exists()
    assert os.listdir(tmp_path) == [], "left behind: " + ", ".join(os.listdir(tmp_path))


def test_declining_to_write_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "answers.yaml"
    t = Term(tmp_path, "-o", str(out))
    t.keep("Stack name")
    t.keep("Namespace")
    t.confirm("Deploy MLflow", False)
    t.confirm("Add a training job?", False)
    t.confirm("Add an inference service?", False)
    t.confirm("Monitor the stack", False)
    t.confirm("Write answers to", False)
    assert t.finish() == 0, t.transcript()
    assert "nothing written" in t.transcript()
    assert os.listdir(tmp_path) == []


def test_an_existing_file_is_refused_before_any_question(tmp_path: Path) -> None:
    out = tmp_path / "answers.yaml"
    out.write_text("mine\n")
    t = Term(tmp_path, "-o", str(out))
    status = t.finish()
    shown = t.transcript()
    assert status == 2, shown
    assert "-o/--output" in shown and "--force" in shown
    assert "Stack name" not in shown
    assert out.read_text() == "mine\n"


def write_preset(tmp_path: Path) -> dict[str, str]:
    """A presets folder of our own, found through HELM_MLOPS_CHARTS (its values-presets/ beside it)."""
    (tmp_path / "charts").symlink_to(REPO / "charts")
    presets = tmp_path / "values-presets"
    presets.mkdir()
    (presets / "fit.py").write_text("print('fit')\n")
    (presets / "team.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "helm-mlops/v1",
                "name": "team-stack",
                "description": "A team's stack",
                "global": {"namespace": "team-ns"},
                "mlflow": {
                    "backendStore": {"type": "postgresql", "inCluster": True},
                    "artifactStore": {"type": "minio", "inCluster": True},
                    "replicas": 2,
                    "podDisruptionBudget": True,
                },
                "training": {"jobs": [{"name": "fit", "script": {"file": "fit.py"}}]},
                "inference": {
                    "services": [{"name": "serve", "model": {"uri": "s3://models/m.onnx"}, "replicas": 2}]
                },
            }
        )
    )
    return {"HELM_MLOPS_CHARTS": str(tmp_path / "charts")}


def test_a_preset_gives_the_defaults_and_its_jobs_may_go(tmp_path: Path) -> None:
    extra = write_preset(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    out = work / "answers.yaml"
    extra[wizard.VERSIONS_ENV] = "3.18.0,3.17.2"
    t = Term(work, "-o", str(out), "--preset", "team", extra_env=extra)
    t.keep("Stack name")
    t.keep("Namespace")
    t.confirm("Deploy MLflow", True)
    t.keep("MLflow version")
    t.keep("backend store")  # the preset's: postgresql in the cluster
    t.keep("artifact store")  # the preset's: minio in the cluster
    t.keep("MLflow server replicas")
    t.confirm("through an Ingress", False)
    t.confirm("basic auth", False)
    t.confirm("Keep the training job fit?", False)
    t.confirm("Add a training job?", False)
    t.confirm("Keep the inference service serve?", True)
    t.confirm("Add an inference service?", False)
    t.confirm("Monitor the stack", False)
    t.confirm("Write answers to", True)
    assert t.finish() == 0, t.transcript()

    data = read_answers(out)
    assert data["name"] == "team-stack"
    assert data["global"]["namespace"] == "team-ns"
    assert data["mlflow"]["version"] == "3.18.0"  # the newest offered
    assert data["mlflow"]["backendStore"] == {"type": "postgresql", "inCluster": True}
    assert data["mlflow"]["artifactStore"] == {"type": "minio", "inCluster": True}
    assert data["mlflow"]["replicas"] == 2 and data["mlflow"]["podDisruptionBudget"] is True
    assert data["training"]["jobs"] == []
    assert [s["name"] for s in data["inference"]["services"]] == ["serve"]


# Without a terminal -------------------------------------------------------------------------------------


def run_init(
    cwd: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "generator", "init", *args],
        cwd=cwd,
        env=env(**(extra_env or {})),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_a_terminal_it_refuses_and_names_the_alternatives(tmp_path: Path) -> None:
    proc = run_init(tmp_path, "-o", "answers.yaml")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    for option in ("--answers", "--preset", "--yes"):
        assert option in proc.stderr, proc.stderr
    assert "needs a terminal" in proc.stderr
    assert os.listdir(tmp_path) == []


def test_yes_writes_the_defaults_without_a_terminal(tmp_path: Path) -> None:
    proc = run_init(tmp_path, "--yes", "-o", "answers.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = read_answers(tmp_path / "answers.yaml")
    assert data == answers.defaults(generate.default_mlflow_version())
    assert "helm-mlops generate --answers answers.yaml -o mlops/" in proc.stdout
    again = run_init(tmp_path, "--yes", "-o", "answers.yaml")
    assert again.returncode == 2 and "-o/--output" in again.stderr
    assert run_init(tmp_path, "--yes", "--force", "-o", "answers.yaml").returncode == 0


def test_yes_with_a_preset_writes_the_preset_with_its_scripts_read_in(tmp_path: Path) -> None:
    extra = write_preset(tmp_path)
    proc = run_init(tmp_path, "--yes", "--preset", "team", "-o", "out/answers.yaml", extra_env=extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = read_answers(tmp_path / "out" / "answers.yaml")
    assert data["name"] == "team-stack" and data["description"] == "A team's stack"
    assert data["training"]["jobs"][0]["script"] == {"content": "print('fit')\n", "fileName": "fit.py"}
    missing = run_init(tmp_path, "--yes", "--preset", "nope", "-o", "x.yaml", extra_env=extra)
    assert missing.returncode == 2 and "--preset" in missing.stderr and "team" in missing.stderr


# The flow through a scripted Ask -------------------------------------------------------------------------


class Scripted:
    """Replies in order, each (part of the question, reply); None accepts the default. Records the
    validation messages and what the wizard said."""

    def __init__(self, replies: Sequence[tuple[str, Any]]) -> None:
        self.replies = list(replies)
        self.errors: list[str] = []
        self.said: list[str] = []

    def _next(self, message: str) -> Any:
        assert self.replies, f"no reply left for {message!r}"
        part, reply = self.replies.pop(0)
        assert part in message, f"expected a question with {part!r}, got {message!r}"
        return reply

    def text(self, message: str, default: str, validate: Callable[[str], str | None]) -> str:
        while True:
            reply = self._next(message)
            raw = default if reply is None else str(reply)
            error = validate(raw)
            if error is None:
                return raw
            self.errors.append(error)

    def select(self, message: str, choices: Sequence[tuple[str, str]], default: str | None) -> str:
        reply = self._next(message)
        values = [v for v, _ in choices]
        value = (default if default in values else values[0]) if reply is None else reply
        assert value in values, f"{value!r} is not one of {values}"
        return str(value)

    def confirm(self, message: str, default: bool) -> bool:
        reply = self._next(message)
        return default if reply is None else bool(reply)

    def say(self, message: str) -> None:
        self.said.append(message)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.said.append(title)


def flow(tmp_path: Path, replies: Sequence[tuple[str, Any]]) -> tuple[dict[str, Any], Scripted]:
    ask = Scripted(replies)
    start = answers.defaults("3.17.2")
    data = wizard.Wizard(
        start, ask, answers_dir=tmp_path, cwd=tmp_path, mlflow_versions=lambda: ["3.17.2"]
    ).run()
    assert ask.replies == [], f"questions not asked: {ask.replies}"
    return data, ask


def test_an_incompatible_format_and_untrusted_pickle_are_asked_again(tmp_path: Path) -> None:
    sha = "a" * 64
    data, ask = flow(
        tmp_path,
        [
            ("Stack name", "s"),
            ("Namespace", None),
            ("Deploy MLflow", False),
            ("Add a training job?", False),
            ("Add an inference service?", True),
            ("Service name", "m"),
            ("Runtime", "mlserver"),
            ("Model URI", "s3://bucket/model.pt"),
            ("Model format", None),  # torch, from the file name: mlserver has no runtime for it
            ("Model format", "sklearn"),
            ("Trust it?", False),
            ("sha256", "not-hex"),
            ("sha256", sha),  # mlserver reads a pvc/s3 file itself... s3 is verified for mlserver
            ("Autoscale", False),
            ("Replicas", "2"),
            ("Add an inference service?", False),
            ("Monitor the stack", False),
        ],
    )
    assert any("mlserver has no runtime for torch models" in s for s in ask.said), ask.said
    assert any("model.sha256" in e for e in ask.errors), ask.errors
    assert data["inference"]["services"][0]["model"] == {
        "uri": "s3://bucket/model.pt",
        "format": "sklearn",
        "trust": False,
        "sha256": sha,
    }
    answers.check(data)


def test_switching_to_sqlite_brings_mlflow_back_to_one_replica(tmp_path: Path) -> None:
    ask = Scripted(
        [
            ("Stack name", None),
            ("Namespace", None),
            ("Deploy MLflow", True),
            ("MLflow version", wizard.OTHER),
            ("MLflow version (SemVer", "three"),
            ("MLflow version (SemVer", "3.18.0"),
            ("backend store", "sqlite"),
            ("artifact store", "pvc"),
            ("volume", "20Gi"),
            ("Ingress", False),
            ("basic auth", False),
            ("Add a training job?", False),
            ("Add an inference service?", False),
            ("Monitor the stack", False),
        ]
    )
    start = answers.defaults("3.17.2")
    start["mlflow"].update(
        replicas=3,
        podDisruptionBudget=True,
        backendStore={"type": "postgresql", "inCluster": True},
        artifactStore={"type": "s3", "bucket": "b"},
    )
    data = wizard.Wizard(start, ask, answers_dir=tmp_path, cwd=tmp_path, mlflow_versions=lambda: []).run()
    assert ask.errors and "mlflow.version" in ask.errors[0]
    m = data["mlflow"]
    assert m["version"] == "3.18.0"
    assert m["backendStore"] == {"type": "sqlite"} and m["artifactStore"] == {"type": "pvc"}
    assert m["replicas"] == 1 and m["podDisruptionBudget"] is False
    assert m["persistence"]["size"] == "20Gi"
    answers.check(data)


def test_the_versions_offered_fall_back_to_the_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(wizard.VERSIONS_ENV, "3.17.2, 3.16.1 ,")
    assert wizard.available_mlflow_versions() == ["3.17.2", "3.16.1"]
    monkeypatch.delenv(wizard.VERSIONS_ENV)

    def missing(name: str) -> Any:
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", missing)
    assert wizard.available_mlflow_versions() == [generate.default_mlflow_version()]


def test_put_at_and_covers() -> None:
    data = {"a": {"b": [{"c": 1}]}}
    assert wizard.put_at(data, ("a", "b", 1), {"c": 2}) == {"a": {"b": [{"c": 1}, {"c": 2}]}}
    assert wizard.put_at(data, ("a", "b", 0, "c"), None) == {"a": {"b": [{}]}}
    assert wizard.put_at(data, ("x", "y"), 3)["x"] == {"y": 3}
    assert data == {"a": {"b": [{"c": 1}]}}
    assert wizard.covers("a.b", "a.b") and wizard.covers("a.b", "a.b.c") and wizard.covers("a.b", "a.b[0]")
    assert not wizard.covers("a.b", "a.bc") and not wizard.covers("a.b", "a")
