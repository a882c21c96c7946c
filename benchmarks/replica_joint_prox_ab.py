"""Before / after timing of the joint loss channel's solve in two source trees, interleaved: each
round runs every tree once, each in its own process (one BLAS thread), on two coupled three-class
tasks (`replica_joint_labels.py` case 1) and four coupled two-class tasks (case 5) on shared inputs,
Σ_t (C_t − 1) = 4, the QMC rule at ``--points`` (both trees on the same rule: `qmc_points`, and
`qmc_joint_points` where the tree has it).  Prints per tree and case the CPU seconds, iterations
and the predictions' largest difference from the first tree's.

    python benchmarks/replica_joint_prox_ab.py TREE_BEFORE TREE_AFTER [--rounds 2] [--points 8192]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
sys.path.insert(0, "benchmarks")
from replica_joint_labels import CASES
from mtsp.numeric.erm import solve_erm
from mtsp.numeric.replica import ReplicaAccuracy
from mtsp.numeric.solve import one_blas_thread
n = int(sys.argv[1])
extra = {"qmc_joint_points": ((0, n),)} if "qmc_joint_points" in ReplicaAccuracy.__dataclass_fields__ else {}
acc = ReplicaAccuracy(qmc_points=n, **extra)
out = {}
with one_blas_thread():
    for k in (1, 5):
        c0 = time.process_time()
        r = solve_erm(CASES[k], acc)
        out[k] = {"cpu": time.process_time() - c0, "it": r["stats"]["iterations"][0],
                  "v": [r["tasks"][t][q][0] for t in r["tasks"] for q in ("gen_error", "test_loss", "train_error")]}
print(json.dumps(out))
"""


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("trees", nargs="+")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--points", type=int, default=2 ** 13)
    a = ap.parse_args(argv)
    print(f"# load {os.getloadavg()[0]:.1f}; QMC rule {a.points} points; CPU seconds per solve (solve_erm, cold)")
    first = {}
    for r in range(a.rounds):
        for tree in a.trees:
            env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS="1")
            res = json.loads(subprocess.run([sys.executable, "-c", CHILD, str(a.points)], cwd=tree, env=env,
                                            check=True, capture_output=True, text=True).stdout)
            for k, v in res.items():
                ref = first.setdefault(k, v["v"])
                diff = max(abs(x - y) for x, y in zip(v["v"], ref))
                print(f"round {r} {tree}: case {k}: {v['cpu']:.2f} s CPU, {v['it']} iterations, "
                      f"max |Δ prediction| from the first tree {diff:.1e}", flush=True)
    print(f"# load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
