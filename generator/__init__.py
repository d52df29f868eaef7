"""helm-mlops: Helm charts and a helm plugin for an ML platform."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("helm-mlops")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0.0.0+unknown"
