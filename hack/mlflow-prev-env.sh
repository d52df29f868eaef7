#!/usr/bin/env bash
# A venv with the previous minor release of MLflow (MLFLOW_PREVIOUS_VERSION), kept under the cache and
# out of .venv: the schema-upgrade test creates a database with it, then migrates it with the chart's
# MLflow. The same scikit-learn as .venv, so the model it logs loads in both. Prints the venv's python.
# Idempotent: a marker records the versions.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$here/versions.env"
# shellcheck source=hack/lib.sh
source "$here/lib.sh"
LOG_TAG=mlflow-prev-env
repo=$(cd "$here/.." && pwd)
py=${PY:-python3}
tag=$("$py" -c 'import sys; print(f"py{sys.version_info[0]}.{sys.version_info[1]}")')
sklearn=$("$repo/.venv/bin/python" -c 'import sklearn; print(sklearn.__version__)')
venv="$HELM_MLOPS_CACHE/mlflow-$MLFLOW_PREVIOUS_VERSION-$tag"
marker="$venv/.helm-mlops-mlflow-$MLFLOW_PREVIOUS_VERSION-sklearn-$sklearn"
if [ ! -f "$marker" ]; then
  log "preparing $venv (mlflow $MLFLOW_PREVIOUS_VERSION)" >&2
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  rm -f "$venv"/.helm-mlops-mlflow-*
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  # psycopg2-binary: the chart's default PostgreSQL driver, as the -full image carries it.
  "$venv/bin/python" -m pip install -q "mlflow==$MLFLOW_PREVIOUS_VERSION" psycopg2-binary \
    "scikit-learn==$sklearn" >&2
  "$venv/bin/python" -c "import mlflow; assert mlflow.__version__ == '$MLFLOW_PREVIOUS_VERSION', mlflow.__version__" >&2
  touch "$marker"
fi
echo "$venv/bin/python"
