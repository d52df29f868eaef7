# A prebuilt helm-mlops inference runtime image: the chart's runtime code and its dependencies baked
# in, so pods skip the install init container (fastapi.prebuilt: true). Build from the repo root:
#   docker build -f docker/runtime.Dockerfile --build-arg EXTRAS="scikit-learn==1.7.2 joblib" -t <registry>/helm-mlops-runtime:0.1.0-sklearn .
#   docker build -f docker/runtime.Dockerfile --build-arg EXTRAS="torch" -t <registry>/helm-mlops-runtime:0.1.0-torch .
# On a GPU (fastapi.device: auto or cuda): torch's default Linux wheels are CUDA builds; for ONNX use
# onnxruntime-gpu in place of onnxruntime, whose CUDA provider also needs the CUDA and cuDNN libraries in
# the image. Without them `--device cuda` stops the pod at start with the reason (never a CPU fallback).
FROM python:3.11-slim
ARG EXTRAS="scikit-learn joblib onnxruntime"
RUN python -m pip install --no-cache-dir "starlette>=0.46,<2" "uvicorn[standard]>=0.34,<1" "orjson>=3.10,<4" \
      "prometheus-client>=0.21,<1" "numpy>=1.26,<3" ${EXTRAS}
COPY charts/inference-service/files/hm_runtime /opt/helm-mlops/runtime/hm_runtime
ENV PYTHONPATH=/opt/helm-mlops/runtime HOME=/tmp
USER 1000:1000
EXPOSE 8000
ENTRYPOINT ["python3", "-m", "hm_runtime"]
