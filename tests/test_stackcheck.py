"""`helm-mlops lint`'s Pod Security "restricted" check reaches the pods that custom resources stand for:
a PyTorchJob's replicas, a KServe InferenceService's predictor (its model container too) and a
TrainJob's runtime patches. It used to check only Pods, workloads and CronJobs, so a privileged
container in a distributed training job or a KServe predictor passed lint."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from generator.stackcheck import problems_in
from tests.support.charts import CHARTS, template

CASES = {
    "PyTorchJob": ("training-job", "pytorchjob-values.yaml"),
    "TrainJob": ("training-job", "trainjob-values.yaml"),
    "InferenceService": ("inference-service", "kserve-sklearn-values.yaml"),
}


def rendered(kind: str, tmp_path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    chart, scenario = CASES[kind]
    docs = template(CHARTS / chart, values_files=[CHARTS / chart / "ci" / scenario], tmp_dir=tmp_path)
    (doc,) = [d for d in docs if d["kind"] == kind]
    return docs, doc


def restricted(docs: list[dict[str, Any]]) -> list[str]:
    return [p for p in problems_in(docs, None, unchecked=[]) if "Pod Security restricted" in p]


def first_container(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The container the mutation goes into: the one the workload's own code runs in."""
    spec = doc["spec"]
    if kind == "PyTorchJob":
        return dict(spec["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0])
    if kind == "InferenceService":
        return dict(spec["predictor"]["model"])
    jobs = spec["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    return dict(jobs[0]["template"]["spec"]["template"]["spec"]["containers"][0])


@pytest.mark.parametrize("kind", sorted(CASES))
def test_the_pods_behind_custom_resources_are_checked(kind: str, tmp_path: Path) -> None:
    docs, doc = rendered(kind, tmp_path)
    assert restricted(docs) == [], "the chart's own render is restricted-clean"
    bad = copy.deepcopy(doc)
    container = first_container(kind, bad)
    container.setdefault("securityContext", {})
    container["securityContext"] = {**container["securityContext"], "privileged": True}
    spec = bad["spec"]
    if kind == "PyTorchJob":
        spec["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0] = container
    elif kind == "InferenceService":
        spec["predictor"]["model"] = container
    else:
        jobs = spec["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
        jobs[0]["template"]["spec"]["template"]["spec"]["containers"][0] = container
    found = restricted([d if d is not doc else bad for d in docs])
    name = doc["metadata"]["name"]
    assert found, f"a privileged container in {kind}/{name} passed"
    assert all(p.startswith(f"{kind}/{name}/") for p in found), found
    assert any("privileged" in p for p in found), found


def test_a_privileged_kserve_transformer_container_is_found(tmp_path: Path) -> None:
    docs, doc = rendered("InferenceService", tmp_path)
    bad = copy.deepcopy(doc)
    bad["spec"]["transformer"] = {
        "containers": [{"name": "t", "image": "t:1", "securityContext": {"privileged": True}}]
    }
    found = restricted([d if d is not doc else bad for d in docs])
    assert any(p.startswith(f"InferenceService/{doc['metadata']['name']}/transformer:") for p in found), found
