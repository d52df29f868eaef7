"""Re-export: the checks live in the package (helm-mlops lint uses them)."""

from generator.charts.policy import hardening_violations, missing_labels, restricted_violations

__all__ = ["hardening_violations", "missing_labels", "restricted_violations"]
