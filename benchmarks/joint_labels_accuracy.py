"""Accuracy of the 4-dim orthant of coupled tasks on shared inputs (`numeric.replica.plackett_orthant4`,
`plackett_joint_labels`) against independent evaluations: SciPy's Genz integrator at abseps 1e-9
(`tests/genz_reference.normal_cdf`; at abseps 1e-11, a minute each, it was 0.7–2e-10 from P), the
adaptive scalar quad of Plackett's identity with Owen's T (`tests/test_joint_labels.orthant4_plackett`), and the project's nested Genz
route `orthant_with_mean` (for comparison); plus the time of the joint labels at 35 000 nodes.

    PYTHONPATH=. python benchmarks/joint_labels_accuracy.py
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from genz_reference import normal_cdf  # noqa: E402
from test_joint_labels import orthant4_plackett, random_channels  # noqa: E402

from mtsp.numeric.replica import orthant_with_mean, plackett_joint_labels, plackett_orthant4  # noqa: E402


def main():
    rng = np.random.default_rng(3)
    print("# plackett_orthant4 vs SciPy Genz (abseps 1e-9, maxpts 1e7), quad of Plackett's identity, nested Genz")
    for k in range(3):
        X = rng.normal(size=(4, 4))
        S = X @ X.T + 0.1 * np.eye(4)
        mu = rng.normal(size=(1, 4))
        p, _ = plackett_orthant4(mu, S)
        t0 = time.perf_counter()
        ref = normal_cdf(mu[0], S, abseps=1e-9, maxpts=10 ** 7)
        t_ref = time.perf_counter() - t0
        q = orthant4_plackett(mu[0], S)
        g, _ = orthant_with_mean(mu, S, stein=False)
        c = S / np.sqrt(np.outer(np.diag(S), np.diag(S)))
        print(f"  case {k}: P {p[0]:.12f}  − scipy {p[0] - ref:+.1e} ({t_ref:.0f} s)  − quad {p[0] - q:+.1e}  "
              f"nested Genz − P {g[0] - p[0]:+.1e}  (max |corr| {np.abs(c - np.eye(4)).max():.2f})")
    chans = random_channels(np.random.default_rng(1), (3, 3), (0.3, 0.0))
    X = rng.normal(size=(4, 4))
    V0 = X @ X.T / 4 + 0.1 * np.eye(4)
    a = rng.normal(size=(35000, 4))
    t0 = time.perf_counter()
    plackett_joint_labels(chans, a, V0)
    print(f"# joint labels of two C = 3 tasks (9 labels, 4 orthants) with gradients at 35 000 nodes: "
          f"{time.perf_counter() - t0:.1f} s (load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
