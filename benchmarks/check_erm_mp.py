"""`mtsp check` for erm on the shared channel code (the mp map = `replica.ReplicaMap` on mp numbers):
one task C = 2 (tensor rule, 151 mp nodes against the double's own), C = 3 (tensor rule, the
double's nodes), C = 4 and 5 (QMC rule, 16 / 32 points), and coupled tasks on shared inputs (the
joint channel): two two-class tasks (Σ_t (C_t − 1) = 2, tensor rule), three two-class tasks (Σ = 3)
and two three-class tasks (Σ = 4) on the QMC rule of 16 points.  Prints, per case, the seconds,
the verdict, the mp residual and every term's relative difference double − mp.

    PYTHONPATH=. python benchmarks/check_erm_mp.py [CASE ...]   (default: all)
"""
from __future__ import annotations

import sys
import time

from mtsp.numeric.check import check_erm
from mtsp.setup import setup_from_dict


def erm(tasks, coupling=0.0, inputs="shared", alignment=0.7, alpha=2.0, ridge=0.1):
    return setup_from_dict({"name": "erm", "tasks": tasks, "teacher": {"alignment": alignment},
                            "student": {"kind": "glm"},
                            "training": {"protocol": "erm", "alpha": alpha, "ridge": ridge,
                                         "coupling": coupling, "inputs": inputs}})


def two(noise):
    return {"name": "A", "classes": 2, "noise": noise}


CASES = {
    "C2": (erm([two(0.3)], alpha=3.0), 151),
    "C3": (erm([{"name": "A", "classes": 3, "noise": 0.5}]), None),
    "C4": (erm([{"name": "A", "classes": 4, "noise": 0.5}]), 16),
    "C5": (erm([{"name": "A", "classes": 5, "noise": 0.5}]), 32),
    "joint_2x2": (erm([two(0.3), dict(two(0.2), name="B")], 1.0), None),
    "joint_3x2": (erm([two(0.3), dict(two(0.2), name="B"), dict(two(0.4), name="C")], 1.0), 16),
    "joint_2x3": (erm([{"name": "A", "classes": 3, "noise": 0.4}, {"name": "B", "classes": 3, "noise": 0.2}],
                      1.0), 16),
}

if __name__ == "__main__":
    for name in sys.argv[1:] or CASES:
        setup, nodes = CASES[name]
        t0 = time.perf_counter()
        rep = check_erm(setup, nodes=nodes)
        terms = " ".join(f"{k} {v:.1e}" for k, v in rep["terms"].items())
        print(f"{name}: {time.perf_counter() - t0:.1f} s, passed {rep['passed']}, mp residual "
              f"{rep['mp_residual']:.1e}, max {max(rep['terms'].values()):.2e} | {terms}", flush=True)
