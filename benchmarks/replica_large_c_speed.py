"""Seconds per (α, λ) point of the replica engine by number of classes, one task (issue 16).

C = 3, 4: the tensor route, timed in this tree and in a reference tree (``--reference``, e.g. the
main branch before the QMC channel) point by point, alternating which goes first, each in its own
process (so that neither warms the other's caches); C = 5, 6, 8: the QMC channel (default 2^14
points), this tree only.  Each time is the cold `solve_erm` (fixed point + predictions), one BLAS
thread, measured inside the process.

    PYTHONPATH=. python benchmarks/replica_large_c_speed.py [--reference /work/main]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
POINTS = {3: [(0.5, 2.0, 0.1), (0.0, 5.0, 0.01), (0.5, 1.0, 1.0)],
          4: [(0.5, 2.0, 0.1), (0.0, 1.0, 1.0)],
          5: [(0.5, 2.0, 0.1), (0.0, 5.0, 0.01), (0.2, 1.0, 1.0)],
          6: [(0.5, 2.0, 0.1), (0.0, 1.0, 0.01), (0.3, 5.0, 1.0)],
          8: [(0.5, 2.0, 0.1)]}

CHILD = """
import json, sys, time
from mtsp.numeric.erm import solve_erm
from mtsp.numeric.solve import one_blas_thread
from mtsp.setup import setup_from_dict
C, noise, alpha, ridge = json.loads(sys.argv[1])
s = setup_from_dict({"tasks": [{"name": "A", "classes": C, "noise": noise}], "student": {"kind": "glm"},
                     "training": {"protocol": "erm", "alpha": alpha, "ridge": ridge}})
t0 = time.perf_counter()
with one_blas_thread():
    out = solve_erm(s)
print(json.dumps([time.perf_counter() - t0, out["tasks"]["A"]["gen_error"][0], out["stats"]["iterations"][0]]))
"""


def run(tree, C, point):
    env = dict(os.environ, PYTHONPATH=tree)
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps([C, *point])], env=env, cwd=tree,
                         capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"{tree}, C = {C}, {point}: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", default="")
    ap.add_argument("--classes", default="3,4,5,6,8")
    a = ap.parse_args(argv)
    here = os.path.dirname(HERE)
    print(f"# seconds per point, one task, one BLAS thread; load {os.getloadavg()[0]:.1f}; this tree {here}"
          + (f", reference {a.reference}" if a.reference else ""))
    for k, C in enumerate(int(c) for c in a.classes.split(",")):
        for j, pt in enumerate(POINTS[C]):
            label = f"C {C} noise {pt[0]:g} alpha {pt[1]:g} ridge {pt[2]:g}"
            if a.reference and C <= 4:
                order = [here, a.reference] if (k + j) % 2 == 0 else [a.reference, here]
                got = {tree: run(tree, C, pt) for tree in order}
                t, g, it = got[here]
                tr, gr, itr = got[a.reference]
                print(f"  {label}: this {t:6.1f} s ({it} it)  reference {tr:6.1f} s ({itr} it)  "
                      f"gen_error {g:.7f} (this − reference {g - gr:+.1e})")
            else:
                t, g, it = run(here, C, pt)
                print(f"  {label}: {t:6.1f} s ({it} it)  gen_error {g:.7f}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
