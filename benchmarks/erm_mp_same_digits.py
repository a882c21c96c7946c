"""Same digits before / after a change of the replica's arithmetic plumbing: `erm.solve_erm(precision="mp")` on
the fast cases of `check_erm_mp` (C2 at 151 mp nodes, C4 on 16 QMC points, joint_3x2 on 16 points; dps 30)
— every entry of the mp fixed points (Q, M, V, residual) and the mp predictions to 30 digits, the double
fixed points and predictions as repr; wall times on stderr.  Run at each tree and compare the outputs:

    PYTHONPATH=/path/to/tree python benchmarks/erm_mp_same_digits.py /path/to/tree [case ...] > out.txt
"""
import sys
import time

sys.path.insert(0, sys.argv[1] + "/benchmarks")
import mpmath  # noqa: E402
import numpy as np  # noqa: E402
from check_erm_mp import CASES  # noqa: E402

from mtsp.numeric.erm import solve_erm  # noqa: E402

for name in sys.argv[2:] or ("C2", "C4", "joint_3x2"):
    setup, nodes = CASES[name]
    t0 = time.perf_counter()
    out = solve_erm(setup, precision="mp", nodes=nodes)
    print(name, "qmc", out["qmc"])
    for (idx, fp), (_, fd) in zip(out["fixed_points"], out["double"]["fixed_points"]):
        for key in ("Q", "M", "V"):
            print(" ", idx, key, "mp", [mpmath.nstr(v, 30) for v in np.ravel(getattr(fp, key))])
            print(" ", idx, key, "double", [repr(float(v)) for v in np.ravel(getattr(fd, key))])
        print(" ", idx, "residual", mpmath.nstr(fp.residual, 5), "train", [[mpmath.nstr(v, 30) for v in t] for t in fp.train])
    for task, pred in out["tasks"].items():
        print(" ", task, "mp", {k: mpmath.nstr(v, 30) if isinstance(v, mpmath.mpf) else repr(v)
                                for k, (v,) in pred.items()})
        print(" ", task, "double", {k: repr(v) for k, v in out["double"]["tasks"][task].items()})
    print(name, f"TIME {time.perf_counter() - t0:.2f}", file=sys.stderr)
