"""JSON-safe copies of results (shared by the CLI, reports and sweep maps)."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["json_safe"]


def json_safe(v):
    """Copy with numpy scalars/arrays turned into Python values and non-finite floats into None."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, np.ndarray):
        return json_safe(v.tolist())
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        v = float(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return v
