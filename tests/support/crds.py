"""Re-export: the checks live in the package (helm-mlops lint uses them)."""

from generator.charts.crds import load_crd_schemas, validate_custom_resource

__all__ = ["load_crd_schemas", "validate_custom_resource"]
