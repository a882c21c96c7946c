"""Batched 4×4 solves of the joint prox (two coupled three-class tasks: H block diagonal of two PSD 2×2
blocks): the Newton step (I + V H)⁻¹ G and the V̂ integrand (I + H V)⁻¹ H by LAPACK (one call per
matrix) against `replica.solve_spd_small` on V⁻¹ + H (LDLᵀ across the batch), at the prox chunk
(2^13 rows) and at 2^16 rows; CPU ms per call, one BLAS thread.

    PYTHONPATH=. python benchmarks/replica_small_solves.py
"""
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from mtsp.numeric.replica import solve_spd_small

rng = np.random.default_rng(0)
d = 4
print(f"# load {os.getloadavg()[0]:.1f}; batched 4×4 solves, one BLAS thread, CPU ms per call (min of 7 × 20 calls)")
for n in (8192, 65536):
    A = rng.standard_normal((d, d))
    V = A @ A.T / d + 0.2 * np.eye(d)
    Vi = np.linalg.inv(V)
    P = rng.standard_normal((n, 2, 2))
    H = np.zeros((n, 4, 4))
    H[:, :2, :2] = P @ P.transpose(0, 2, 1)
    P = rng.standard_normal((n, 2, 2))
    H[:, 2:, 2:] = P @ P.transpose(0, 2, 1)
    G = rng.standard_normal((n, d))

    def t(f, k=7):
        f()
        ts = []
        for _ in range(k):
            t0 = time.process_time()
            for _ in range(20):
                f()
            ts.append((time.process_time() - t0) / 20)
        return f"{min(ts) * 1e3:.2f}"
    with threadpool_limits(1, "blas"):
        J, Am, K = np.eye(d) + V @ H, Vi + H, np.eye(d) + H @ V
        print(f"n = {n}: step (I + VH)⁻¹G: LAPACK {t(lambda: np.linalg.solve(J, G[..., None]))}, LDLᵀ of V⁻¹ + H "
              f"{t(lambda: solve_spd_small(Am, G @ Vi))}; V̂ integrand (I + HV)⁻¹H: LAPACK {t(lambda: np.linalg.solve(K, H))}, "
              f"LDLᵀ {t(lambda: solve_spd_small(Am, H))}")
