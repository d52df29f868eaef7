"""`helm-mlops generate`, `template`, `lint`, `presets` and `answers-schema`, run as a user runs them:
the umbrella chart's files, reproducibility, atomic writes, the seed request shapes, one builder for
`train` and stacks."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.charts import REPO, TOOLS_BIN

EXE = Path(sys.executable).parent / "helm-mlops"
ENV = {**os.environ, "PATH": f"{TOOLS_BIN}:{os.environ['PATH']}"}

SCRIPT = "import mlflow\nprint('fit')\n"
ANSWERS = """\
apiVersion: helm-mlops/v1
kind: Stack
name: team
global:
  namespace: ml
  labels: {team: vision}
mlflow:
  artifactStore: {type: minio, inCluster: true}
training:
  jobs:
    - name: fit
      script: {file: train.py}
      requirements: [scikit-learn]
      cpu: "1"
      memory: 1Gi
      env: {EPOCHS: "3"}
inference:
  services:
    - name: iris
      model: {uri: "models:/iris@champion", trust: true}
      hpa: {enabled: true, minReplicas: 1, maxReplicas: 4, targetCPU: 60}
    - name: onnx
      model: {uri: "s3://models/iris.onnx"}
      cpu: 500m
      memory: 512Mi
"""


def run(*args: str | Path, stdin: str | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        check=False,
    )


def clean(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture
def answers_file(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(SCRIPT)
    path = tmp_path / "answers.yaml"
    path.write_text(ANSWERS)
    return path


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_generate_writes_an_umbrella_chart(answers_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "stack"
    result = run("generate", "--answers", answers_file, "-o", out)
    clean(result, 0)
    assert f"wrote stack team (MLflow, 1 training job, 2 inference services) to {out}" in result.stdout
    chart = yaml.safe_load((out / "Chart.yaml").read_text())
    deps = [(d["name"], d.get("alias", d["name"])) for d in chart["dependencies"]]
    assert deps == [
        ("mlflow", "mlflow"),
        ("training-job", "fit"),
        ("inference-service", "iris"),
        ("inference-service", "onnx"),
    ]
    assert sorted(p.name for p in (out / "charts").iterdir()) == [
        "inference-service-0.2.0.tgz",
        "mlflow-0.2.0.tgz",
        "training-job-0.2.0.tgz",
    ]
    values = yaml.safe_load((out / "values.yaml").read_text())
    assert values["global"]["mlflow"]["trackingUri"] == "http://team-mlflow:5000"
    assert values["fit"]["script"]["content"] == SCRIPT
    assert values["fit"]["env"] == [{"name": "EPOCHS", "value": "3"}]
    assert values["iris"]["autoscaling"]["maxReplicas"] == 4
    # One MinIO answer serves MLflow's artifacts and the s3:// model source, and admits that service.
    assert values["onnx"]["model"]["source"]["s3"]["endpointUrl"] == "http://team-mlflow-minio:9000"
    peers = values["mlflow"]["artifactStore"]["minio"]["allowFrom"]
    assert peers[0]["podSelector"]["matchExpressions"][0]["values"] == ["onnx"]
    saved = yaml.safe_load((out / "answers.yaml").read_text())
    assert saved["training"]["jobs"][0]["script"] == {"content": SCRIPT, "fileName": "train.py"}
    readme = (out / "README.md").read_text()
    assert "helm install team . --namespace ml --create-namespace --wait" in readme
    assert "kubectl -n ml port-forward svc/team-iris 8080:80" in readme
    schema = json.loads((out / "values.schema.json").read_text())
    assert set(schema["properties"]) == {"global", "credentials", "mlflow", "fit", "iris", "onnx"}


def test_each_generated_value_names_the_answer_behind_it(answers_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "stack"
    clean(run("generate", "--answers", answers_file, "-o", out), 0)
    lines = (out / "values.yaml").read_text().splitlines()

    def comment_above(block: str, key: str) -> str:
        start = lines.index(f"{block}:")
        for i in range(start + 1, len(lines)):
            if lines[i].strip().startswith(f"{key}:"):
                return lines[i - 1].strip()
        raise AssertionError(f"{key} not under {block}")

    assert comment_above("iris", "autoscaling") == "# <- inference.services[0].hpa"
    assert comment_above("onnx", "cpu") == "# <- inference.services[1].cpu"
    assert comment_above("fit", "requirements") == "# <- training.jobs[0].requirements"
    assert comment_above("mlflow", "replicaCount") == "# <- mlflow.replicas"
    assert comment_above("fit", "commonLabels") == "# <- global.labels"


def test_the_same_answers_give_byte_identical_charts(answers_file: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    clean(run("generate", "--answers", answers_file, "-o", first), 0)
    # From the saved answers.yaml (script inlined), elsewhere: the same bytes, archives included.
    clean(run("generate", "--answers", first / "answers.yaml", "-o", second), 0)
    assert files_of(first) == files_of(second)
    # Again into the same directory: it is ours and unchanged, so no --force is needed.
    clean(run("generate", "--answers", first / "answers.yaml", "-o", first), 0)
    assert files_of(first) == files_of(second)


def test_a_directory_it_did_not_create_or_edited_files_need_force(answers_file: Path, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    stderr = clean(run("generate", "--answers", answers_file, "-o", theirs), 2)
    assert "-o/--output: " in stderr and "helm-mlops did not create it" in stderr and "--force" in stderr
    assert sorted(p.name for p in theirs.iterdir()) == ["notes.txt"]
    ours = tmp_path / "ours"
    clean(run("generate", "--answers", answers_file, "-o", ours), 0)
    (ours / "values.yaml").write_text((ours / "values.yaml").read_text() + "# my change\n")
    stderr = clean(run("generate", "--answers", answers_file, "-o", ours), 2)
    assert "changed since it was generated: values.yaml" in stderr
    clean(run("generate", "--answers", answers_file, "-o", ours, "--force"), 0)
    assert "# my change" not in (ours / "values.yaml").read_text()
    clean(run("generate", "--answers", answers_file, "-o", theirs, "--force"), 0)
    assert not (theirs / "notes.txt").exists() and (theirs / "Chart.yaml").is_file()


def cli_main(args: list[str]) -> int:
    from generator import cli

    try:
        cli.main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_an_interrupted_generate_leaves_nothing(
    answers_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "stack"
    writes = {"n": 0}
    real = Path.write_bytes

    def interrupt_midway(self: Path, data: bytes) -> int:
        writes["n"] += 1
        if writes["n"] == 4:
            raise KeyboardInterrupt
        return real(self, data)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Path, "write_bytes", interrupt_midway)
    assert cli_main(["generate", "--answers", str(answers_file), "-o", str(out)]) == 130
    assert writes["n"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.yaml", "train.py"]
    # An interrupted regeneration keeps the previous stack as it was.
    monkeypatch.setattr(Path, "write_bytes", real)
    assert cli_main(["generate", "--answers", str(answers_file), "-o", str(out), "-q"]) == 0
    before = files_of(out)
    writes["n"] = 0
    monkeypatch.setattr(Path, "write_bytes", interrupt_midway)
    assert cli_main(["generate", "--answers", str(answers_file), "-o", str(out), "--force"]) == 130
    assert files_of(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.yaml", "stack", "train.py"]


def test_bad_answers_write_nothing_and_name_every_field(tmp_path: Path) -> None:
    bad = tmp_path / "answers.yaml"
    bad.write_text(
        "apiVersion: helm-mlops/v1\nname: t\nmlflow: {replicas: 2}\n"
        "inference:\n  services:\n    - "
        "{name: s, model: {uri: 's3://b/m.onnx'}, hpa: {enabled: true, minReplicas: 2, maxReplicas: 1}}\n"
    )  # fmt: skip
    out = tmp_path / "out"
    stderr = clean(run("generate", "--answers", bad, "-o", out), 2)
    assert "2 problem(s)" in stderr
    assert "mlflow.replicas: must be 1 with backendStore.type sqlite (got 2)" in stderr
    assert "inference.services[0].hpa.maxReplicas: must be >= minReplicas (2)" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.yaml"]


def test_set_changes_answers_with_helms_syntax(answers_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "stack"
    clean(run("generate", "--answers", answers_file, "-o", out, "--set", "inference.services[1].replicas=3",
              "--set-string", "global.namespace=prod"), 0)  # fmt: skip
    values = yaml.safe_load((out / "values.yaml").read_text())
    assert values["onnx"]["replicaCount"] == 3
    assert yaml.safe_load((out / "answers.yaml").read_text())["global"]["namespace"] == "prod"


def test_answers_from_standard_input_and_json(tmp_path: Path) -> None:
    data = {"apiVersion": "helm-mlops/v1", "name": "piped", "mlflow": {"enabled": True}}
    out = tmp_path / "stack"
    clean(run("generate", "--answers", "-", "-o", out, stdin=json.dumps(data)), 0)
    assert yaml.safe_load((out / "Chart.yaml").read_text())["name"] == "piped"


def test_a_seed_inference_request_generates_a_stack(tmp_path: Path) -> None:
    from skl2onnx import to_onnx  # a real model file, as the seed UI uploads it
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    onnx = to_onnx(LogisticRegression(max_iter=300).fit(x, y), x[:1].astype("float32")).SerializeToString()
    request = {
        "name": "iris", "namespace": "team-a", "modelFile": base64.b64encode(onnx).decode(),
        "modelFileName": "iris.onnx", "runtime": "fastapi", "cpu": "500m", "memory": "1Gi", "replicas": 1,
        "hpa": {"enabled": False}, "ingress": {"enabled": False}, "owner": "ui",
    }  # fmt: skip
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    out = tmp_path / "stack"
    result = run("generate", "--answers", path, "-o", out)
    clean(result, 0)
    assert "read a seed inference request" in result.stdout and "owner" in result.stdout
    values = yaml.safe_load((out / "values.yaml").read_text())
    inline = values["iris"]["model"]["source"]["inline"]
    assert base64.b64decode(inline["base64"]) == onnx and inline["fileName"] == "iris.onnx"
    lint = run("lint", out)
    clean(lint, 0)


def test_seed_mlflow_credentials_go_to_a_secret_file(tmp_path: Path) -> None:
    request = {
        "namespace": "ml",
        "backendStore": {"type": "sqlite"},
        "artifactStore": {"type": "minio", "endpoint": "https://minio.example.com", "bucket": "mlflow",
                          "accessKey": "minio-user-1", "secretKey": "minio-pass-2"},
        "trackingUI": True,
    }  # fmt: skip
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    out = tmp_path / "stack"
    result = run("generate", "--answers", path, "-o", out)
    clean(result, 0)
    for name in ("values.yaml", "answers.yaml", "README.md", "Chart.yaml"):
        text = (out / name).read_text()
        assert "minio-pass-2" not in text and "minio-user-1" not in text, name
    creds = out / "credentials.yaml"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert "minio-pass-2" not in result.stdout + result.stderr
    rendered = subprocess.run(
        [str(TOOLS_BIN / "helm"), "template", "mlflow", str(out), "-f", str(creds)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "mlflow-artifacts")
    assert secret["stringData"] == {"root-user": "minio-user-1", "root-password": "minio-pass-2"}
    server = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "mlflow-service")
    env = {e["name"]: e for e in server["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-artifacts"
    # The Secret exists before anything that reads it (MLflow's migration hook has weight -10).
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < -10
    # Regenerating from the directory (its answers.yaml) keeps the only copy of the credentials.
    before = creds.read_bytes()
    again = run("generate", "--answers", out, "-o", out)
    clean(again, 0)
    assert creds.read_bytes() == before and stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert f"-f {creds}" in again.stdout


def test_train_and_a_stack_render_the_same_job(answers_file: Path, tmp_path: Path) -> None:
    """One builder: the job from `helm-mlops train` and from a stack differ only in names and labels."""
    script = tmp_path / "train.py"
    rendered = tmp_path / "train-out"
    clean(
        run(
            "train",
            "fit",
            "--script",
            script,
            "--requirement",
            "scikit-learn",
            "--cpu",
            "1",
            "--memory",
            "1Gi",
            "--tracking-uri",
            "http://team-mlflow:5000",
            "--render-to",
            rendered,
        ),
        0,
    )
    # By kind: `*-job-*.yaml` matches the ConfigMaps too, and the directory's order decides otherwise.
    rendered_docs = [yaml.safe_load(p.read_text()) for p in sorted(rendered.glob("[0-9]*.yaml"))]
    from_train = next(d for d in rendered_docs if d["kind"] == "Job")
    out = tmp_path / "stack"
    clean(run("generate", "--answers", answers_file, "-o", out, "--set-json", "training.jobs[0].env=[]"), 0)
    docs = [d for d in yaml.safe_load_all(run("template", out).stdout) if d]
    from_stack = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"].startswith("team-fit-"))

    def essence(job: dict[str, Any], release: str, fullname: str) -> dict[str, Any]:
        pod = job["spec"]["template"]["spec"]
        main = pod["containers"][0]
        names = {release: "<release>", fullname: "<job>"}
        env = [(e["name"], names.get(e.get("value"), e.get("value"))) for e in main.get("env", [])]
        return {
            "image": main["image"],
            "command": main.get("command"),
            "args": main.get("args"),
            "resources": main["resources"],
            "env": sorted(item for item in env if item[1] is not None),
            "volumes": sorted(v["name"] for v in pod["volumes"]),
        }

    train_side = essence(from_train, "fit", "fit-training-job")
    assert train_side == essence(from_stack, "team", "team-fit")
    assert ("MLFLOW_TRACKING_URI", "http://team-mlflow:5000") in train_side["env"]


def test_chart_repo_references_published_charts(answers_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "stack"
    clean(
        run("generate", "--answers", answers_file, "-o", out, "--chart-repo", "oci://registry.local/charts"),
        0,
    )
    chart = yaml.safe_load((out / "Chart.yaml").read_text())
    assert {d["repository"] for d in chart["dependencies"]} == {"oci://registry.local/charts"}
    assert not (out / "charts").exists()
    stderr = clean(
        run("generate", "--answers", answers_file, "-o", tmp_path / "x", "--chart-repo", "ftp://x"), 2
    )
    assert "--chart-repo" in stderr and not (tmp_path / "x").exists()


def test_template_and_lint_check_a_stack_on_both_helms(answers_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "stack"
    clean(run("generate", "--answers", answers_file, "-o", out), 0)
    lint = run("lint", out)
    clean(lint, 0)
    assert "helm lint --strict (helm v4." in lint.stdout and "helm lint --strict (helm v3." in lint.stdout
    assert "kubernetes-validate --strict, CRDs and Pod Security restricted: ok" in lint.stdout
    kinds = [d["kind"] for d in yaml.safe_load_all(run("template", out).stdout) if d]
    assert kinds.count("Deployment") == 3 and kinds.count("Job") >= 1
    # A values change that breaks Pod Security "restricted" is named by lint.
    values = out / "values.yaml"
    values.write_text(
        values.read_text().replace("iris:\n", "iris:\n  podSecurityContext: {runAsNonRoot: false}\n", 1)
    )
    stderr = clean(run("lint", out), 2)
    assert "Deployment/team-iris: Pod Security restricted: container" in stderr


def test_presets_list_and_schema(tmp_path: Path) -> None:
    listed = json.loads(clean_out(run("presets", "-o", "json")))
    names = [p["name"] for p in listed]
    assert names == sorted([
        "quickstart", "minio", "production", "gpu-training", "distributed-pytorch", "sweep",
        "inference-onnx", "inference-mlserver", "kserve", "full-stack",
    ])  # fmt: skip
    assert all(p["description"] for p in listed)
    assert [p["name"] for p in yaml.safe_load(clean_out(run("presets", "-o", "yaml")))] == names
    table = clean_out(run("presets"))
    assert table.splitlines()[0].split() == ["NAME", "DESCRIPTION"]
    printed = json.loads(clean_out(run("answers-schema")))
    assert printed == json.loads((REPO / "docs" / "answers.schema.json").read_text())


def clean_out(result: subprocess.CompletedProcess[str]) -> str:
    clean(result, 0)
    return result.stdout


def test_presets_and_help_import_neither_pyhelm3_nor_kubernetes() -> None:
    code = (
        "import sys\nfrom generator import cli\n"
        "try:\n    cli.main(['presets', '-o', 'json'])\nexcept SystemExit:\n    pass\n"
        "print(','.join(m for m in ('pyhelm3', 'kubernetes') if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stderr.strip() == "", result.stderr


def test_shell_completion_comes_from_click() -> None:
    env = {**ENV, "_HELM_MLOPS_COMPLETE": "bash_source"}
    script = subprocess.run([str(EXE)], capture_output=True, text=True, env=env, check=False)
    assert (
        script.returncode == 0 and "complete -o nosort -F _helm_mlops_completion helm-mlops" in script.stdout
    )
    env = {**ENV, "_HELM_MLOPS_COMPLETE": "bash_complete", "COMP_WORDS": "helm-mlops gen", "COMP_CWORD": "1"}
    words = subprocess.run([str(EXE)], capture_output=True, text=True, env=env, check=False).stdout
    assert "plain,generate" in words.splitlines()


def test_regenerating_in_place_after_editing_the_answers(answers_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "stack"
    clean(run("generate", "--answers", answers_file, "-o", out), 0)
    saved = out / "answers.yaml"
    saved.write_text(saved.read_text().replace("maxReplicas: 4", "maxReplicas: 6"))
    # As the stack's README says: from inside the directory, `-o .`, no --force for an edited answers.yaml.
    clean(run("generate", "--answers", "answers.yaml", "-o", ".", cwd=out), 0)
    assert yaml.safe_load((out / "values.yaml").read_text())["iris"]["autoscaling"]["maxReplicas"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.yaml", "stack", "train.py"]


def test_an_answers_file_needs_its_header(tmp_path: Path) -> None:
    bare = tmp_path / "answers.yaml"
    bare.write_text("name: nohead\n")
    stderr = clean(run("generate", "--answers", bare, "-o", tmp_path / "out"), 2)
    assert "apiVersion: missing" in stderr and "helm-mlops/v1" in stderr
    assert not (tmp_path / "out").exists()


def test_a_service_device_reaches_the_runtime(tmp_path: Path) -> None:
    """`device` (issue 18) becomes the chart's fastapi.device, with the answer named above it."""
    answers = tmp_path / "answers.yaml"
    answers.write_text(
        "apiVersion: helm-mlops/v1\nname: vision\nmlflow: {enabled: false}\ninference:\n  services:\n"
        "    - name: net\n      model: {uri: 's3://models/net.pt', trust: true}\n"
        "      image: registry.example.com/helm-mlops-runtime:0.1.0-torch\n"
        "      gpus: 1\n      device: cuda\n"
    )
    out = tmp_path / "stack"
    clean(run("generate", "--answers", answers, "-o", out), 0)
    text = (out / "values.yaml").read_text()
    values = yaml.safe_load(text)
    assert values["net"]["fastapi"]["device"] == "cuda" and values["net"]["gpu"]["count"] == 1
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "device: cuda")
    assert lines[at - 1].strip() == "# <- inference.services[0].device"


def test_one_answer_turns_monitoring_on_for_every_component(answers_file: Path, tmp_path: Path) -> None:
    """`monitoring.enabled`: ServiceMonitors (MLflow, services), a PrometheusRule per component and one
    dashboard ConfigMap per chart, all selected by the labels answered; the README says what to install."""
    monitored = ANSWERS.replace(
        '      model: {uri: "s3://models/iris.onnx"}\n',
        '      model: {uri: "s3://models/iris.onnx"}\n'
        "      monitoring: {reference: iris/reference.csv, feedback: true}\n",
    )
    assert monitored != ANSWERS
    answers_file.write_text(
        monitored
        + "monitoring:\n  enabled: true\n  labels: {release: kube-prometheus-stack}\n"
        + "  prometheusNamespace: observability\n"
    )
    out = tmp_path / "stack"
    clean(run("generate", "--answers", answers_file, "-o", out), 0)
    docs = [d for d in yaml.safe_load_all(run("template", out).stdout) if d]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    monitors = sorted(d["metadata"]["name"] for d in by_kind["ServiceMonitor"])
    assert monitors == ["team-iris", "team-mlflow", "team-onnx"]
    rules = by_kind["PrometheusRule"]
    assert len(rules) == 4, [d["metadata"]["name"] for d in rules]  # mlflow, fit, iris, onnx
    for d in by_kind["ServiceMonitor"] + rules:
        assert d["metadata"]["labels"]["release"] == "kube-prometheus-stack", d["metadata"]["name"]
    dashboards = [
        d for d in by_kind["ConfigMap"] if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert len(dashboards) == 3  # one per chart: every release of a chart would carry the same dashboard
    # Prometheus' namespace reaches the NetworkPolicies of the scraped pods.
    policies = [
        json.dumps(d["spec"]) for d in by_kind["NetworkPolicy"] if d["metadata"]["name"] == "team-iris"
    ]
    assert policies and "observability" in policies[0]
    readme = (out / "README.md").read_text()
    assert "## Monitoring" in readme and "`release: kube-prometheus-stack`" in readme
    assert "kube-state-metrics" in readme and "`observability`" in readme
    # The service with model monitoring gets its drift, data-quality and accuracy alerts; the other not.
    drift = {
        d["metadata"]["name"]: "HelmMlopsInferenceFeatureDrift" in json.dumps(d["spec"])
        for d in rules
        if d["metadata"]["name"].startswith(("team-iris", "team-onnx"))
    }
    assert drift == {"team-iris": False, "team-onnx": True}, drift
    [server] = [d for d in by_kind["Deployment"] if d["metadata"]["name"] == "team-onnx"]
    env = {
        e["name"]: e.get("value")
        for c in server["spec"]["template"]["spec"]["containers"]
        for e in c.get("env", [])
    }
    assert env.get("HM_RUNTIME_FEEDBACK") == "true" and env.get("HM_RUNTIME_REFERENCE"), env
    values_text = (out / "values.yaml").read_text()
    assert "# <- monitoring.enabled" in values_text and "# <- monitoring.labels" in values_text
    clean(run("lint", out), 0)
    # Off (the default): none of it, and the README says how to turn it on.
    answers_file.write_text(ANSWERS)
    off = tmp_path / "off"
    clean(run("generate", "--answers", answers_file, "-o", off), 0)
    kinds = {d["kind"] for d in yaml.safe_load_all(run("template", off).stdout) if d}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    assert "Set `monitoring.enabled: true`" in (off / "README.md").read_text()


@pytest.mark.parametrize(
    ("service", "says"),
    [
        (
            '{name: ms, runtime: mlserver, model: {uri: "s3://m/a.joblib", trust: true}',
            "inference.services[0].monitoring: model monitoring runs in the helm-mlops runtime",
        ),
        (
            "{name: tiny, model: {inline: {fileName: a.onnx, base64: AAAA}}",
            "inference.services[0].monitoring: the reference sample comes from the model's source",
        ),
    ],
)
def test_model_monitoring_answers_need_the_runtime_and_a_model_source(
    service: str, says: str, tmp_path: Path
) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text(
        "apiVersion: helm-mlops/v1\nkind: Stack\nname: s\nmlflow: {enabled: false}\n"
        f"inference:\n  services:\n    - {service}, monitoring: {{reference: ref.csv}}}}\n"
    )
    out = tmp_path / "out"
    stderr = clean(run("generate", "--answers", answers, "-o", out), 2)
    assert says in stderr
    assert not out.exists()
