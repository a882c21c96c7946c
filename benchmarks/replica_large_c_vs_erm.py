"""Replica engine vs exact ERM minimisers for many classes (C = 4, 5, 6, 8; issue 16).

C = 4 runs the tensor route (`replica.loss_channel_hats`), C ≥ 5 the QMC channel
(`replica_qmc`, default 2^14 points).  The simulation is the project's (`mtsp.simulate` for erm,
validate/erm.py: per seed the exact minimiser by Newton–CG in float64 to gradient rms 1e-10,
its gen_error exact from its order parameters), at N and seeds given.  Agreement criterion of
issue 16: |theory − mean| < 4 SE + 0.003.  The theory runs with one BLAS thread (as `mtsp solve`),
its time per point printed.

    PYTHONPATH=. python benchmarks/replica_large_c_vs_erm.py [--N 1000] [--seeds 32] [--only k,k]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from mtsp.numeric.erm import solve_erm
from mtsp.numeric.solve import one_blas_thread
from mtsp.validate.simulate import simulate
from replica_vs_erm import setup


def one(C, noise, alpha, ridge, rank=None, teacher=None, name=""):
    task = {"name": "A", "classes": C, "noise": noise}
    if rank is not None:
        task["rank"] = rank
    return setup([task], alpha, ridge, teacher=teacher, name=name)


CASES = [
    one(4, 0.0, 1.0, 0.01, name="C4 clean a1 l0.01"),
    one(4, 0.3, 3.0, 0.03, rank=2, name="C4 rank2 noise0.3 a3 l0.03"),
    one(5, 0.5, 2.0, 0.1, name="C5 noise0.5 a2 l0.1"),
    one(5, 0.0, 0.5, 1.0, name="C5 clean a0.5 l1"),
    one(5, 0.0, 5.0, 0.01, name="C5 clean a5 l0.01"),
    one(5, 0.2, 4.0, 0.05, teacher={"norm": 2.0}, name="C5 norm2 noise0.2 a4 l0.05"),
    one(6, 0.5, 2.0, 0.1, name="C6 noise0.5 a2 l0.1"),
    one(6, 0.0, 1.0, 0.01, name="C6 clean a1 l0.01"),
    one(6, 0.3, 3.0, 0.1, rank=3, name="C6 rank3 noise0.3 a3 l0.1"),
    one(6, 0.2, 5.0, 1.0, teacher={"norm": 2.0, "class_map": "random"},
        name="C6 random map norm2 noise0.2 a5 l1"),
    one(6, 0.0, 3.0, 0.03, teacher={"norm": 3.0}, name="C6 clean norm3 a3 l0.03"),
    one(8, 0.5, 2.0, 0.1, name="C8 noise0.5 a2 l0.1"),
]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--only", default="")
    a = ap.parse_args(argv)
    only = {int(k) for k in a.only.split(",") if k}
    print(f"# replica (large C) vs exact ERM minimisers (Newton–CG), N = {a.N}, {a.seeds} seeds; "
          f"agree: |theory − sim| < 4 SE + 0.003; load {os.getloadavg()[0]:.1f}")
    fails = 0
    for k, s in enumerate(CASES):
        if only and k not in only:
            continue
        t0 = time.perf_counter()
        with one_blas_thread():
            th = solve_erm(s)
        t_th = time.perf_counter() - t0
        t0 = time.perf_counter()
        sim = simulate(s, N=a.N, seeds=a.seeds)
        t_sim = time.perf_counter() - t0
        g_th = th["tasks"]["A"]["gen_error"][0]
        mean, se = sim.tasks["A"]["gen_error"][0], sim.tasks["A"]["gen_error_se"][0]
        ok = abs(g_th - mean) < 4 * se + 0.003
        fails += not ok
        print(f"[{k}] {s.name}: theory {t_th:.1f} s ({th['stats']['iterations'][0]} it, residual "
              f"{th['stats']['residual'][0]:.1e}); simulation {t_sim:.1f} s (grad rms "
              f"{sim.solver['grad_rms_max']:.1e})\n"
              f"    gen_error theory {g_th:.4f}  sim {mean:.4f} ± {se:.4f}  diff {g_th - mean:+.4f} "
              f"({(g_th - mean) / se:+.1f} SE)  {'ok' if ok else 'DISAGREE'};  train_error theory "
              f"{th['tasks']['A']['train_error'][0]:.4f} sim {sim.tasks['A']['train_error'][0]:.4f}")
        sys.stdout.flush()
    print(f"# {fails} disagreement(s)")
    return fails


if __name__ == "__main__":
    sys.exit(main())
