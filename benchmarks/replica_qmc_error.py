"""Error of the replica engine's QMC channel (`numeric.replica_qmc`, one task, C ≥ 5 by default).

part orthant: the mean of `genz_orthant`'s samples over n Sobol' points against scipy's Genz CDF
  at abseps 1e-9 (an independent code), m = 3..7.
part tensor: C = 3, 4 points solved by the tensor route (its design error ≲ 1e-9) and by the QMC
  channel (qmc_classes = 3) at n = 2^12, 2^14, 2^16 points, two scramblings each: the QMC rule's
  error on the predictions where an independent accurate answer exists.
part spread: C = 5, 6, 8 points (no second accurate route): the QMC fixed point at 2^14 points
  under independent scramblings (--seeds, default 4), and at --ref-points points (default 2^16),
  seed 0 (the reference): the spread and the distance from the reference state the rule's error.

    PYTHONPATH=. python benchmarks/replica_qmc_error.py --part orthant|tensor|spread
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from mtsp.numeric.erm import solve_erm
from mtsp.numeric.replica import ReplicaAccuracy
from mtsp.numeric.replica_qmc import genz_orthant
from mtsp.numeric.sobol import sobol_points
from mtsp.numeric.solve import one_blas_thread
from replica_large_c_vs_erm import one

KEYS = ("gen_error", "label_error", "test_loss", "train_error")


def solve(s, acc=None):
    t0 = time.perf_counter()
    with one_blas_thread():
        out = solve_erm(s, acc)
    return {k: out["tasks"]["A"][k][0] for k in KEYS}, time.perf_counter() - t0


def fmt(d):
    return "  ".join(f"{k} {v:.7f}" for k, v in d.items())


def part_orthant():
    from scipy.stats import multivariate_normal
    print("# Genz orthant (mean over n Sobol' points, seed 7) − scipy Genz CDF (abseps 1e-9)")
    for m in range(3, 8):
        rng = np.random.default_rng(m)
        A = rng.standard_normal((m, m))
        S, mu = A @ A.T + 0.5 * np.eye(m), rng.standard_normal(m)
        ref = multivariate_normal(np.zeros(m), S, abseps=1e-9, releps=0, maxpts=10 ** 7, seed=1).cdf(mu)
        diffs = []
        for n in (2 ** 12, 2 ** 14, 2 ** 16):
            P, _ = genz_orthant(np.tile(mu, (n, 1)), S, sobol_points(m - 1, n, 7))
            diffs.append(f"n {n}: {P.mean() - ref:+.1e}")
        print(f"  m = {m}: P = {ref:.6f}; " + ", ".join(diffs))
        sys.stdout.flush()


TENSOR_CASES = [one(3, 0.5, 2.0, 0.1, name="C3 noise0.5 a2 l0.1"),
                one(3, 0.0, 5.0, 0.01, name="C3 clean a5 l0.01"),
                one(3, 0.3, 3.0, 0.03, rank=1, name="C3 rank1 noise0.3 a3 l0.03"),
                one(4, 0.5, 2.0, 0.1, name="C4 noise0.5 a2 l0.1")]

SPREAD_CASES = [one(5, 0.5, 2.0, 0.1, name="C5 noise0.5 a2 l0.1"),
                one(5, 0.0, 5.0, 0.01, name="C5 clean a5 l0.01"),
                one(6, 0.3, 3.0, 0.1, rank=3, name="C6 rank3 noise0.3 a3 l0.1"),
                one(6, 0.0, 3.0, 0.03, teacher={"norm": 3.0}, name="C6 clean norm3 a3 l0.03"),
                one(8, 0.5, 2.0, 0.1, name="C8 noise0.5 a2 l0.1")]


def part_tensor():
    print("# QMC channel − tensor route (C ≤ 4), per n and scrambling seed")
    for s in TENSOR_CASES:
        ref, t = solve(s)
        print(f"{s.name}: tensor ({t:.1f} s) {fmt(ref)}")
        for n in (2 ** 12, 2 ** 14, 2 ** 16):
            for seed in (0, 1):
                got, t = solve(s, ReplicaAccuracy(qmc_classes=3, qmc_points=n, qmc_seed=seed))
                print(f"  n {n:6d} seed {seed} ({t:5.1f} s): " +
                      "  ".join(f"{k} {got[k] - ref[k]:+.1e}" for k in KEYS))
                sys.stdout.flush()


def part_spread(only, seeds, ref_points):
    print(f"# QMC channel at 2^14 points, {seeds} scramblings, against {ref_points} points (seed 0)")
    for k, s in enumerate(SPREAD_CASES):
        if only and k not in only:
            continue
        ref, t = solve(s, ReplicaAccuracy(qmc_points=ref_points))
        print(f"{s.name}: {ref_points} points ({t:.1f} s) {fmt(ref)}")
        vals = []
        for seed in range(seeds):
            got, t = solve(s, ReplicaAccuracy(qmc_seed=seed))
            vals.append([got[k] for k in KEYS])
            print(f"  2^14 seed {seed} ({t:5.1f} s): " + "  ".join(f"{k} {got[k] - ref[k]:+.1e}" for k in KEYS))
            sys.stdout.flush()
        sd = np.std(vals, axis=0, ddof=1)
        print("  spread (sd over seeds) at 2^14: " + "  ".join(f"{k} {v:.1e}" for k, v in zip(KEYS, sd)))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("orthant", "tensor", "spread"), required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--seeds", type=int, default=4, help="scramblings at 2^14 points (spread)")
    ap.add_argument("--ref-points", type=int, default=2 ** 16, help="reference rule (spread)")
    a = ap.parse_args(argv)
    print(f"# load {os.getloadavg()[0]:.1f}")
    if a.part == "orthant":
        part_orthant()
    elif a.part == "tensor":
        part_tensor()
    else:
        part_spread({int(k) for k in a.only.split(",") if k}, a.seeds, a.ref_points)


if __name__ == "__main__":
    main()
