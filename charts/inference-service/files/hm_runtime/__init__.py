"""helm-mlops inference runtime: one server for scikit-learn pickles and joblib files, ONNX,
TorchScript and pickled PyTorch modules, Keras .h5/.keras and MLflow models, speaking the seed's
`POST /predict` and the Open Inference Protocol v2, with adaptive batching and Prometheus metrics.

Shipped by the inference-service chart (ConfigMap) and run locally by `helm-mlops runtime serve`."""

__version__ = "0.1.0"
