#!/usr/bin/env bash
# Record the API objects tests/test_training_cli.py reads (tests/fixtures/recorded/): training-job
# chart renders applied to the local test cluster (hack/cluster.sh, kwok nodes) and read back with
# `kubectl get -o json` once the Job controller has written their status.
#   hack/record-training-objects.sh            # writes tests/fixtures/recorded/training-jobs.json
# HELM_MLOPS_CLUSTER names the cluster (default helm-mlops-test, the tests' cluster: started if down).
# kwok runs no container: its pod-run-to-completion stage marks a Job's pods Succeeded with exit code 0
# and its pod-fail-on-request stage (image tag "kwok-fail") Failed with exit code 1 (hack/kwok/stages.yaml);
# the pods carry no termination message.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
export HELM_MLOPS_CLUSTER=${HELM_MLOPS_CLUSTER:-helm-mlops-test}
bash "$here/cluster.sh" up >/dev/null
kubeconfig=$(bash "$here/cluster.sh" kubeconfig)
kc() { "$root/.tools/bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }
ns=hm-recorded
out="$root/tests/fixtures/recorded"
work=$(mktemp -d)
trap 'kc delete namespace "$ns" --ignore-not-found --wait=false >/dev/null; rm -rf "$work"' EXIT

kc delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
kc create namespace "$ns" >/dev/null

# name values...: render the chart as release "r" and apply it (its test pod left out).
apply() {
  local name=$1
  shift
  "$root/.tools/bin/helm" template r "$root/charts/training-job" --namespace "$ns" \
    --set-string fullnameOverride="$name" --set tests.enabled=false "$@" >"$work/$name.yaml"
  kc apply -n "$ns" -f "$work/$name.yaml" >/dev/null
}
job_of() { kc get jobs -n "$ns" -l "helm-mlops.io/training-job=$1" -o jsonpath='{.items[0].metadata.name}'; }

# A sweep of three trials that completes (Indexed Job, one pod per trial).
apply sweep --set-string script.content='print(1)' --set-string mlflow.trackingUri=http://mlflow:5000 \
  --set sweep.enabled=true \
  --set 'sweep.parameters[0].name=lr' --set 'sweep.parameters[0].type=float' \
  --set 'sweep.parameters[0].values={0.1,0.01,0.001}'
# A single-pod Job whose pod fails, with no retry.
apply failing --set-string script.content='print(1)' --set-string image.tag=kwok-fail --set job.backoffLimit=0
# A Job created suspended.
apply suspended --set-string script.content='print(1)' --set job.suspend=true
# A Job whose pod cannot be scheduled: active, never finishing.
apply waiting --set-string script.content='print(1)' --set-string 'nodeSelector.example\.com/pool=none'

kc wait -n "$ns" --for=condition=Complete "job/$(job_of sweep)" --timeout=120s >/dev/null
kc wait -n "$ns" --for=condition=Failed "job/$(job_of failing)" --timeout=120s >/dev/null
kc wait -n "$ns" --for=jsonpath='{.status.active}'=1 "job/$(job_of waiting)" --timeout=120s >/dev/null
sleep 2  # the suspended Job's Suspended condition

# The files: one `kubectl get -o json` per object kind and case, as kubectl prints them.
for name in sweep failing suspended waiting; do
  kc get job -n "$ns" "$(job_of "$name")" -o json >"$work/$name-job.json"
  kc get pods -n "$ns" -l "batch.kubernetes.io/job-name=$(job_of "$name")" -o json >"$work/$name-pods.json"
done
mkdir -p "$out"
python3 - "$work" "$out/training-jobs.json" <<'EOF'
import json, sys
from pathlib import Path
work, target = Path(sys.argv[1]), Path(sys.argv[2])
cases = {n: {"job": json.loads((work / f"{n}-job.json").read_text()),
             "pods": json.loads((work / f"{n}-pods.json").read_text())["items"]}
         for n in ("sweep", "failing", "suspended", "waiting")}
target.write_text(json.dumps(cases, indent=1, sort_keys=True) + "\n")
EOF
echo "wrote $out/training-jobs.json"
