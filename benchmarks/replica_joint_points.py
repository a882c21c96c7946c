"""How many QMC points the joint loss channel of coupled tasks on shared inputs needs
(`numeric.replica_qmc.qmc_loss_channel_hats`, from Σ_t (C_t − 1) = `ReplicaAccuracy.qmc_joint_dims`):
the fixed point's predictions on n = 2^12 … 2^15 points (scrambling seeds 0 and 1) against a reference
rule of 2^16 points (seed 0; 2^15 at Σ = 8, where 2^16 costs ~10 CPU minutes), per task gen_error,
test_loss and train_error (the indicator on the rule).

Cases: the four μ > 0 Σ = 4 setups of `replica_joint_labels.py` (two three-class tasks ×3, four
two-class tasks), and wider joint channels: five two-class tasks (Σ = 5), two four-class tasks and
three three-class tasks (Σ = 6), two five-class tasks (Σ = 8).

Every solve is stored in ``--store`` (JSON, keyed by case and rule) and reused, so the expensive
references can run in commands of their own; ``--table`` prints the deviations of every stored rule
from its case's reference.  The joint rule's size is set through `ReplicaAccuracy.qmc_joint_points`
(`ReplicaAccuracy.joint_points`).  Times: wall and CPU seconds, one BLAS thread.

    PYTHONPATH=. python benchmarks/replica_joint_points.py --only j4a --rules 16:0,13:0 [--store FILE] [--table]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from replica_joint_labels import CASES as JOINT  # noqa: E402
from replica_vs_erm import setup  # noqa: E402

KEYS = ("gen_error", "test_loss", "train_error")
STORE = os.path.join(os.path.dirname(__file__), "results", "replica_joint_points.json")


def _tasks(C, noises):
    return [{"name": "ABCDEFGH"[k], "classes": C, "noise": s} for k, s in enumerate(noises)]


CASES = {
    "j4a": JOINT[1], "j4b": JOINT[2], "j4c": JOINT[3], "j4d": JOINT[5],
    "j5": setup(_tasks(2, [0.3, 0.0, 0.5, 0.2, 0.4]), 2.0, 0.1, 1.0, "shared", {"alignment": 0.7},
                name="5x C2 shared align0.7 a2 l0.1 mu1"),
    "j6a": setup(_tasks(4, [0.3, 0.0]), 2.0, 0.1, 1.0, "shared", {"alignment": 0.7},
                 name="2x C4 shared align0.7 noisy+clean a2 l0.1 mu1"),
    "j6b": JOINT[6],
    "j8": setup(_tasks(5, [0.3, 0.0]), 2.0, 0.1, 1.0, "shared", {"alignment": 0.7},
                name="2x C5 shared align0.7 noisy+clean a2 l0.1 mu1"),
}
REFERENCE = {"j8": "15:0", "j4d": "15:0", "j5": "15:0", "j6a": "15:0"}   # the rest: 16:0


def reference(case):
    return REFERENCE.get(case, "16:0")


def solve(s, rule):
    from mtsp.numeric.erm import solve_erm
    from mtsp.numeric.replica import ReplicaAccuracy
    from mtsp.numeric.solve import one_blas_thread
    k, seed = (int(v) for v in rule.split(":"))
    acc = ReplicaAccuracy(qmc_joint_points=((0, 2 ** k),), qmc_seed=seed)
    t0, c0 = time.perf_counter(), time.process_time()
    with one_blas_thread():
        r = solve_erm(s, acc)
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "load": os.getloadavg()[0],
            "iterations": r["stats"]["iterations"][0], "residual": r["stats"]["residual"][0],
            "tasks": {t: {k: r["tasks"][t][k][0] for k in KEYS} for t in r["tasks"]}}


def table(store):
    print("# max over tasks |rule − reference| (reference: 2^16 points, seed 0; j4d, j5, j6a, j8: 2^15; where the "
          "reference is missing, the largest seed-0 rule stored, marked *)")
    print(f"# {'case':5s} {'Σ':>2s} {'rule':>9s} {'CPU s':>7s} {'it':>3s}  " + "  ".join(f"{k:>11s}" for k in KEYS))
    for case, s in CASES.items():
        runs = store.get(case, {})
        ref_rule = reference(case)
        if ref_rule not in runs and runs:
            ref_rule = max((r for r in runs if r.endswith(":0")), key=lambda r: int(r.split(":")[0]))
        ref = runs.get(ref_rule)
        dims = sum(t.classes - 1 for t in s.tasks)
        for rule in sorted(runs, key=lambda r: (-int(r.split(":")[0]), r)):
            v = runs[rule]
            k, seed = rule.split(":")
            dev = ("  ".join(f"{max(abs(v['tasks'][t][q] - ref['tasks'][t][q]) for t in v['tasks']):11.1e}"
                             for q in KEYS) if ref and rule != ref_rule else "  (reference)")
            dev += "" if ref_rule == reference(case) else "  *"
            print(f"  {case:5s} {dims:2d} 2^{k} s{seed:<3s} {v['cpu']:7.1f} {v['iterations']:3d}  {dev}")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--rules", default="", help="log2 points:seed, comma separated")
    ap.add_argument("--store", default=STORE)
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args(argv)
    store = json.load(open(a.store)) if os.path.exists(a.store) else {}
    for case in [c for c in a.only.split(",") if c]:
        s = CASES[case]
        for rule in [r for r in a.rules.split(",") if r]:
            if rule in store.get(case, {}):
                continue
            v = solve(s, rule)
            print(f"[{case}] {s.name} rule 2^{rule}: wall {v['wall']:.1f} s CPU {v['cpu']:.1f} s (load "
                  f"{v['load']:.1f}) iterations {v['iterations']} residual {v['residual']:.1e}  " +
                  "  ".join(f"{t}: " + " ".join(f"{v['tasks'][t][k]:.6f}" for k in KEYS) for t in v["tasks"]),
                  flush=True)
            store = json.load(open(a.store)) if os.path.exists(a.store) else {}   # runs in parallel
            store.setdefault(case, {})[rule] = v
            with open(a.store, "w") as f:
                json.dump(store, f, indent=1)
    if a.table:
        table(store)


if __name__ == "__main__":
    main()
