"""A disk cache of the scrambled Sobol' point sets of `quadrature` (their generator,
scipy.stats.qmc, costs 0.2 s to import — a tenth of a whole solve).

The point sets are deterministic functions of (dimension, points, seed) for a given SciPy, so
they are stored once as .npy files beside the generated modules (``$MTSP_CACHE_DIR`` or
``~/.cache/mtsp``) and loaded afterwards.  `quadrature.SOBOL_STORE` holds the cache in use
(None: always generate); the generated modules get the same one from `derive.codegen`.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import scipy

__all__ = ["SobolStore", "default_store"]


class SobolStore:
    """get(dim, n, seed) → the (n × dim) uniform points or None; put(...) stores them
    (atomically: a forked worker may write the same set at the same time)."""

    def __init__(self, directory: str):
        self.directory = directory

    def _path(self, dim: int, n: int, seed: int) -> str:
        return os.path.join(self.directory, f"sobol_scipy{scipy.__version__}_d{dim}_n{n}_s{seed}.npy")

    def get(self, dim: int, n: int, seed: int):
        try:
            u = np.load(self._path(dim, n, seed))
        except (OSError, ValueError):
            return None
        return u if u.shape == (n, dim) else None

    def put(self, dim: int, n: int, seed: int, u: np.ndarray) -> None:
        try:
            os.makedirs(self.directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".npy")
            with os.fdopen(fd, "wb") as f:
                np.save(f, u)
            os.replace(tmp, self._path(dim, n, seed))
        except OSError:  # a read-only cache only costs time
            pass


def default_store() -> SobolStore:
    from mtsp.derive.codegen import cache_dir
    return SobolStore(os.path.join(cache_dir(), "points"))
