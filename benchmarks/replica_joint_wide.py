"""Replica engine vs exact ERM minimisers for coupled tasks on shared inputs whose joint label has
Σ_t (C_t − 1) ≥ 7 dimensions (two five-class tasks: 8; three four-class tasks: 9; two six-class
tasks: 10; three five-class tasks: 12, 125 joint labels; two ten-class tasks: 18), related and unrelated teachers, μ = 0.5–2: the joint channel on the QMC rule
(`numeric.replica_qmc.qmc_loss_channel_hats`).

Per setup: the replica prediction (`numeric.erm.solve_erm`; its time, iterations, residual) and the
exact minimisers of `mtsp simulate` for erm (`validate.erm.run_erm`: truncated Newton to a gradient
rms ≤ 1e-10, float64; gen_error exact per minimiser), stored in ``--sims FILE`` (JSON) and reused
when present.  Agreement criterion of issue 16: |theory − mean| < 4 SE + 0.003.

    PYTHONPATH=. python benchmarks/replica_joint_wide.py [--N 1000] [--seeds 16] [--only k,...]
        [--sims FILE] [--sims-only] [--points N]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from replica_joint_labels import simulations  # noqa: E402
from replica_joint_residual_correlation import cross_task_correlation  # noqa: E402
from replica_vs_erm import agreement_row, setup  # noqa: E402


def _tasks(C, noises):
    return [{"name": "ABC"[k], "classes": C, "noise": s} for k, s in enumerate(noises)]


CASES = [
    setup(_tasks(5, [0.3, 0.0]), 2.0, 0.1, 1.0, "shared", {"alignment": 0.7},
          name="2x C5 shared align0.7 noisy+clean a2 l0.1 mu1"),
    setup(_tasks(5, [0.5, 0.2]), 3.0, 0.05, 0.5, "shared", {"alignment": 0.0},
          name="2x C5 shared unrelated a3 l0.05 mu0.5"),
    setup(_tasks(4, [0.3, 0.0, 0.5]), 2.0, 0.1, 1.0, "shared", {"alignment": 0.6},
          name="3x C4 shared align0.6 a2 l0.1 mu1"),
    setup(_tasks(6, [0.2, 0.4]), 2.0, 0.1, 2.0, "shared", {"alignment": 0.8},
          name="2x C6 shared align0.8 a2 l0.1 mu2"),
    setup(_tasks(6, [0.3, 0.3]), 1.5, 0.1, 1.0, "shared", {"alignment": 0.0},
          name="2x C6 shared unrelated a1.5 l0.1 mu1"),
    setup(_tasks(5, [0.3, 0.0, 0.5]), 2.0, 0.1, 1.0, "shared", {"alignment": 0.7},
          name="3x C5 shared align0.7 a2 l0.1 mu1"),
    setup(_tasks(10, [0.3, 0.0]), 2.0, 0.1, 1.0, "shared", {"alignment": 0.7},
          name="2x C10 shared align0.7 noisy+clean a2 l0.1 mu1"),
]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--only", default="")
    ap.add_argument("--sims", default="")
    ap.add_argument("--sims-only", action="store_true")
    ap.add_argument("--points", type=int, default=0, help="QMC points (default: ReplicaAccuracy's, 2^14)")
    a = ap.parse_args(argv)
    only = {int(k) for k in a.only.split(",") if k}
    sims = simulations(CASES, a.N, a.seeds, a.sims, only)
    if a.sims_only:
        return 0
    from mtsp.numeric.erm import erm_problem, solve_erm
    from mtsp.numeric.replica import ReplicaAccuracy
    acc = ReplicaAccuracy(qmc_points=a.points) if a.points else ReplicaAccuracy()
    print(f"# replica vs exact ERM minimisers (validate.erm.run_erm, Newton-CG, gradient rms ≤ 1e-10), "
          f"coupled tasks on shared inputs, Σ_t (C_t − 1) ≥ 8, QMC rule of {acc.qmc_points} points, N = {a.N}, "
          f"{a.seeds} seeds; "
          f"agree: |theory − sim| < 4 SE + 0.003")
    fails = 0
    for k, s in enumerate(CASES):
        if only and k not in only:
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        th = solve_erm(s, acc)
        t_th, c_th = time.perf_counter() - t0, time.process_time() - c0
        fp = th["fixed_points"][0][1]
        sim = sims[s.name]
        print(f"[{k}] {s.name}: theory {t_th:.1f} s wall, {c_th:.1f} s CPU (iterations {fp.iterations}, "
              f"residual {fp.residual:.1e}); simulation {sim['wall_time']:.1f} s (max gradient rms "
              f"{sim['grad_rms_max']:.1e})")
        _, chans, _, G = erm_problem(s)
        r0 = chans[0].r
        print(f"    V⁰ = G − Mᵀ Q⁻¹ M: largest |correlation| of task A's and task B's teacher coordinates "
              f"given ω {cross_task_correlation(G, fp, r0, 2 * r0):.3f} (zero would make P(y | ω) a product)")
        for t in s.tasks:
            fails += not agreement_row(t.name, th["tasks"][t.name]["gen_error"][0],
                                       sim["tasks"][t.name]["gen_error"], sim["tasks"][t.name]["gen_error_se"])
        sys.stdout.flush()
    print(f"# {fails} disagreement(s)")
    return fails


if __name__ == "__main__":
    sys.exit(main())
