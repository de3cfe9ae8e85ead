"""Generated JAX code vs OSDI on random operating points and parameter sets, any model."""
from ._compare import ABS_FLOOR, REL_TOL, ValidationResult, random_voltages, validate_file

__all__ = ["ABS_FLOOR", "REL_TOL", "ValidationResult", "random_voltages", "validate_file"]
