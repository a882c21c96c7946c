"""The quadrature points of one mp right-hand side: `mp_solve.rhs_points` (the count announced before
an mp solve) against the points the right-hand side runs (the tally of the executor passed down,
`workers._Tally`), at the initial state and at late states of the double trajectory (large Q: the
sign-orthant split of tanh / erf trunks, the wide-logit pieces of linear trunks).

    PYTHONPATH=. python benchmarks/mp_rhs_points.py [--nodes 8] > benchmarks/results/mp_rhs_points.txt
"""
import argparse
import time

import mpmath

from mtsp.derive import GENERATED
from mtsp.api import solve
from mtsp.numeric.mp_solve import rhs_points
from mtsp.setup import load_setup, setup_from_dict


def two_tasks(act, K, C, norm=1.0, times=(0.5, 20.0)):
    return setup_from_dict({
        "name": f"{act} K={K} C={C} norm {norm}",
        "tasks": [{"name": "A", "classes": C}, {"name": "B", "classes": C, "noise": 0.5}],
        "teacher": {"alignment": 0.7, "norm": norm},
        "student": {"kind": "shared", "hidden": K, "activation": act, "init_scale": 0.1},
        "training": {"protocol": "online", "lr": 1.0, "times": list(times)}})


# the old a-priori count at 8 nodes (the same at every state), measured on e82ca50
OLD = {"linear K=2 C=2 norm 1.0": 112, "linear K=2 C=3 norm 1.0": 4480, "linear K=2 C=3 norm 4.0": 4480,
       "tanh K=2 C=2 norm 4.0": 144, "erf K=1 C=3 norm 4.0": 1288, "strong teachers, tanh K = 2": 12864}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=8)
    a = ap.parse_args()
    setups = [two_tasks("linear", 2, 2), two_tasks("linear", 2, 3), two_tasks("linear", 2, 3, norm=4.0),
              two_tasks("tanh", 2, 2, norm=4.0), two_tasks("erf", 1, 3, norm=4.0),
              load_setup("examples/strong_teachers_tanh.toml")]
    print(f"nodes per dimension {a.nodes}; measured = rhs_points(model, state, nodes): the product-rule points "
          "the mp right-hand side ran (n^d per integral of d dims; the executor's tally), its integrals and "
          "their largest d; old = the a-priori count from the structure that rhs_points announced before "
          "(commit e82ca50), for comparison")
    print(f"{'setup':<34} {'t':>5} {'max Q_kk':>9} {'old':>9} {'measured':>9} {'integrals':>9} "
          f"{'dim':>4} {'s':>6}")
    for su in setups:
        res = solve(su, processes=1)
        for t in [0.0] + [float(x) for x in su.training.times]:
            st = res.model.initial_state() if t == 0 else res.state(t)
            with mpmath.workdps(20):
                t0 = time.perf_counter()
                pts, rules, dim = rhs_points(res.model, st, a.nodes, generated=GENERATED)
                secs = time.perf_counter() - t0
            print(f"{su.name[:34]:<34} {t:5g} {float(st.Q.diagonal().max()):9.3g} {OLD.get(su.name, ''):>9} "
                  f"{pts:9d} {rules:9d} {dim:4d} {secs:6.1f}", flush=True)


if __name__ == "__main__":
    main()
