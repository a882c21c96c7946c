"""The joint loss channel of coupled tasks on shared inputs on the QMC rule
(`numeric.replica_qmc.qmc_loss_channel_hats`, from Σ_t (C_t − 1) = `ReplicaAccuracy.qmc_joint_dims`):
its error and its time per point.

Σ = 3 (three two-class tasks) and Σ = 4 (two three-class tasks), μ > 0: the tensor route
(qmc_joint_dims = 99; design error ≲ 1e-9 at Σ ≤ 3, ~1e-5 at 4) against the QMC route at 2^14
points with two scramblings (seeds 0, 1).  Σ = 6 (three three-class tasks, refused before): the
QMC route at 2^14 points, seeds 0 and 1, and at 2^16 points (seed 0, the reference); Σ = 8 (two
five-class tasks, refused before) two scramblings at 2^14 and 2^15 points (seed 0); with the largest conditional
correlation of two tasks' teacher coordinates given the student fields (V⁰ = G − Mᵀ Q⁻¹ M; zero
would make P(y | ω) a product over the tasks), also for unrelated teachers (s8u).  Per solve:
wall and CPU seconds (one BLAS thread), iterations, and per task gen_error, test_loss, train_error.

    PYTHONPATH=. python benchmarks/replica_joint_qmc.py [--only s3,s4,s6,s8,s8u]
"""
from __future__ import annotations

import argparse
import time


from mtsp.numeric.erm import erm_problem, solve_erm
from mtsp.numeric.replica import ReplicaAccuracy
from mtsp.numeric.solve import one_blas_thread
from mtsp.setup import setup_from_dict
from replica_joint_residual_correlation import cross_task_correlation


def coupled(C, T, noises, alpha=2.0, ridge=0.1, mu=1.0, alignment=0.7):
    return setup_from_dict({"name": f"{T}x C{C}", "tasks": [{"name": n, "classes": C, "noise": s}
                                                            for n, s in zip("ABC", noises)],
                            "teacher": {"alignment": alignment}, "student": {"kind": "glm"},
                            "training": {"protocol": "erm", "ridge": ridge, "coupling": mu,
                                         "inputs": "shared", "alpha": alpha}})


CASES = {
    "s3": coupled(2, 3, [0.3, 0.0, 0.5]),
    "s4": coupled(3, 2, [0.3, 0.0]),
    "s6": coupled(3, 3, [0.3, 0.0, 0.5]),
    "s8": coupled(5, 2, [0.3, 0.0]),
    "s8u": coupled(5, 2, [0.3, 0.0], alignment=0.0),
}
ROUTES = {
    "s3": [("tensor", ReplicaAccuracy(qmc_joint_dims=99)), ("qmc 2^14 seed 0", ReplicaAccuracy(qmc_joint_dims=3)),
           ("qmc 2^14 seed 1", ReplicaAccuracy(qmc_joint_dims=3, qmc_seed=1))],
    "s4": [("tensor", ReplicaAccuracy(qmc_joint_dims=99)), ("qmc 2^14 seed 0", ReplicaAccuracy()),
           ("qmc 2^14 seed 1", ReplicaAccuracy(qmc_seed=1))],
    "s6": [("qmc 2^16 seed 0", ReplicaAccuracy(qmc_points=2 ** 16)), ("qmc 2^14 seed 0", ReplicaAccuracy()),
           ("qmc 2^14 seed 1", ReplicaAccuracy(qmc_seed=1))],
    "s8": [("qmc 2^14 seed 0", ReplicaAccuracy()), ("qmc 2^14 seed 1", ReplicaAccuracy(qmc_seed=1)),
           ("qmc 2^15 seed 0", ReplicaAccuracy(qmc_points=2 ** 15))],
    "s8u": [("qmc 2^14 seed 0", ReplicaAccuracy())],
}
KEYS = ("gen_error", "test_loss", "train_error")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="s3,s4,s6,s8,s8u")
    a = ap.parse_args(argv)
    for case in a.only.split(","):
        s = CASES[case]
        print(f"[{case}] {s.name} shared, noise {[t.noise for t in s.tasks]}, α = 2, λ = 0.1, μ = 1, "
              f"alignment {s.teacher.alignment}", flush=True)
        ref = None
        for name, acc in ROUTES[case]:
            t0, c0 = time.perf_counter(), time.process_time()
            with one_blas_thread():
                r = solve_erm(s, acc)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            vals = {t: {k: r["tasks"][t][k][0] for k in KEYS} for t in r["tasks"]}
            ref = ref or vals
            dist = {k: max(abs(vals[t][k] - ref[t][k]) for t in vals) for k in KEYS}
            print(f"  {name:16s} wall {wall:6.1f} s  CPU {cpu:6.1f} s  iterations {r['stats']['iterations']}  "
                  f"residual {max(r['stats']['residual']):.1e}", flush=True)
            for t, v in vals.items():
                print("    " + t + "  " + "  ".join(f"{k} {v[k]:.6f}" for k in KEYS))
            fp = r["fixed_points"][0][1]
            _, chans, _, G = erm_problem(s)
            r0 = chans[0].r
            print(f"    V⁰: largest |correlation| of task A's and task B's teacher coordinates given ω "
                  f"{cross_task_correlation(G, fp, r0, 2 * r0):.3f}")
            if vals is not ref:
                print("    max |Δ| from the first row: " + "  ".join(f"{k} {dist[k]:.1e}" for k in KEYS))


if __name__ == "__main__":
    main()
