"""Replica engine vs exact ERM minimisers for coupled tasks on shared inputs whose joint label has
Σ_t (C_t − 1) = 4 dimensions (two three-class tasks; four two-class tasks; Plackett's identity,
`numeric.replica.plackett_joint_labels`), one three-task case (three two-class tasks, 3 dims), and
three three-class tasks (6 dims; from 4 dims the joint channel runs on the QMC rule,
`numeric.replica_qmc.qmc_loss_channel_hats`).

Per setup: the replica prediction (`numeric.erm.solve_erm`; its time, iterations, residual, nodes
per axis; at μ = 0 also the joint channel forced, `solve_fixed_point(..., shared=True)`, which
must give the single-task answers) and the exact minimisers of `mtsp simulate` for erm
(`validate.erm.run_erm`: truncated Newton to a gradient rms ≤ 1e-10, float64; gen_error exact per
minimiser).  Agreement criterion of issue 16: |theory − mean| < 4 SE + 0.003.
The simulations are stored in ``--sims FILE`` (JSON) and reused when present.

    PYTHONPATH=. python benchmarks/replica_joint_labels.py [--N 1000] [--seeds 32] [--only k,...]
        [--sims FILE] [--sims-only]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from replica_vs_erm import agreement_row, setup  # noqa: E402

C3 = {"classes": 3}
CASES = [
    setup([{"name": "A", **C3, "noise": 0.3}, {"name": "B", **C3, "noise": 0.0}],
          2.0, 0.1, 0.0, "shared", {"alignment": 0.7}, name="2x C3 shared align0.7 noisy+clean a2 l0.1 mu0"),
    setup([{"name": "A", **C3, "noise": 0.3}, {"name": "B", **C3, "noise": 0.0}],
          2.0, 0.1, 1.0, "shared", {"alignment": 0.7}, name="2x C3 shared align0.7 noisy+clean a2 l0.1 mu1"),
    setup([{"name": "A", **C3, "noise": 0.5}, {"name": "B", **C3, "noise": 0.0}],
          3.0, 0.05, 0.5, "shared", {"alignment": 0.0}, name="2x C3 shared unrelated noisy+clean a3 l0.05 mu0.5"),
    setup([{"name": "A", **C3, "noise": 0.2}, {"name": "B", **C3, "noise": 0.6}],
          1.0, 0.1, 2.0, "shared", {"alignment": 0.9}, name="2x C3 shared align0.9 a1 l0.1 mu2"),
    setup([{"name": "A", "classes": 2, "noise": 0.3}, {"name": "B", "classes": 2, "noise": 0.0},
           {"name": "C", "classes": 2, "noise": 0.5}],
          3.0, 0.05, 1.0, "shared", {"alignment": 0.8}, name="3x C2 shared align0.8 a3 l0.05 mu1"),
    setup([{"name": "A", "classes": 2, "noise": 0.3}, {"name": "B", "classes": 2, "noise": 0.0},
           {"name": "C", "classes": 2, "noise": 0.5}, {"name": "D", "classes": 2, "noise": 0.2}],
          2.0, 0.1, 0.5, "shared", {"alignment": 0.6}, name="4x C2 shared align0.6 a2 l0.1 mu0.5"),
    setup([{"name": "A", **C3, "noise": 0.3}, {"name": "B", **C3, "noise": 0.0}, {"name": "C", **C3, "noise": 0.5}],
          2.0, 0.1, 1.0, "shared", {"alignment": 0.7}, name="3x C3 shared align0.7 a2 l0.1 mu1"),
]


def simulations(cases, N, seeds, path, only):
    import torch
    from mtsp.validate.erm import run_erm
    sims = json.load(open(path)) if path and os.path.exists(path) else {}
    for k, s in enumerate(cases):
        if (only and k not in only) or s.name in sims:
            continue
        sim = run_erm(s, N, seeds, "cpu", torch.float64, seed=1)
        sims[s.name] = {"N": N, "seeds": seeds, "wall_time": sim.wall_time,
                        "grad_rms_max": sim.solver["grad_rms_max"],
                        "tasks": {t: {"gen_error": float(d["gen_error"][0]),
                                      "gen_error_se": float(d["gen_error_se"][0])}
                                  for t, d in sim.tasks.items()}}
        print(f"# simulated [{k}] {s.name}: {sim.wall_time:.1f} s", file=sys.stderr)
        if path:
            with open(path, "w") as f:
                json.dump(sims, f, indent=1)
    return sims


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--only", default="")
    ap.add_argument("--sims", default="")
    ap.add_argument("--sims-only", action="store_true")
    a = ap.parse_args(argv)
    only = {int(k) for k in a.only.split(",") if k}
    sims = simulations(CASES, a.N, a.seeds, a.sims, only)
    if a.sims_only:
        return 0
    from mtsp.numeric.erm import erm_problem, solve_erm
    from mtsp.numeric.replica import solve_fixed_point
    print(f"# replica vs exact ERM minimisers (validate.erm.run_erm, Newton-CG, gradient rms ≤ 1e-10), "
          f"coupled tasks on shared inputs, N = {a.N}, {a.seeds} seeds; agree: |theory − sim| < 4 SE + 0.003")
    fails = 0
    for k, s in enumerate(CASES):
        if only and k not in only:
            continue
        t0 = time.perf_counter()
        th = solve_erm(s)
        t_th = time.perf_counter() - t0
        fps = th["fixed_points"]
        sim = sims[s.name]
        print(f"[{k}] {s.name}: theory {t_th:.1f} s (iterations {[fp.iterations for _, fp in fps]}, residual "
              f"{max(fp.residual for _, fp in fps):.1e}, nodes per axis {[fp.nodes for _, fp in fps]}); "
              f"simulation {sim['wall_time']:.1f} s (max gradient rms {sim['grad_rms_max']:.1e})")
        for t in s.tasks:
            fails += not agreement_row(t.name, th["tasks"][t.name]["gen_error"][0],
                                       sim["tasks"][t.name]["gen_error"], sim["tasks"][t.name]["gen_error_se"])
        if s.training.coupling == 0:
            _, channels, Lam, G = erm_problem(s)
            t0 = time.perf_counter()
            joint = solve_fixed_point(channels, Lam, G, shared=True)
            d = channels[0].d
            diffs = [float(abs(joint.Q[t * d:(t + 1) * d, t * d:(t + 1) * d] - fp.Q).max())
                     for t, (_, fp) in enumerate(fps)]
            print(f"    joint channel forced at μ = 0: {time.perf_counter() - t0:.1f} s, iterations "
                  f"{joint.iterations}, nodes {joint.nodes}; max |Q_tt − Q_single| per task "
                  f"{', '.join(f'{x:.1e}' for x in diffs)}")
        sys.stdout.flush()
    print(f"# {fails} disagreement(s)")
    return fails


if __name__ == "__main__":
    sys.exit(main())
