"""helm-mlops: Helm charts and a helm plugin for an ML platform."""

__version__ = "0.1.0"
