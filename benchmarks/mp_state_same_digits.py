"""Same mp digits before / after a change of the mp path's plumbing (state, packing, generated system): every
named mp integral, dQ, dR, dV, losses (22 digits) and the mp metrics at the double solve's state of five setups
(`benchmarks/mp_solve.setup`: linear C = 2 / 3 with K = 2, tanh K = 2, relu K = 2, erf K = 1 C = 3; dps 20, 6–8
nodes), and two small mp solves (dps 20, t ≤ 0.2, 12 / 16 nodes: linear K = 2 C = 2, tanh K = 1 C = 2: the
JSON fields and the mp states at the reported times, 22 digits); wall times on stderr.  Run at each tree and
compare the outputs (the tree of commit beb46a7 takes `mp_online.rhs_state_mp` instead of `rhs_state_mp` below):

    PYTHONPATH=/path/to/tree python benchmarks/mp_state_same_digits.py /path/to/tree [case ...] > out.txt
"""
import sys
import time

sys.path.insert(0, sys.argv[1] + "/benchmarks")
import mpmath  # noqa: E402
import numpy as np  # noqa: E402
from mp_solve import setup  # noqa: E402

from mtsp.derive import GENERATED  # noqa: E402
from mtsp.numeric.model import theory_model  # noqa: E402
from mtsp.numeric.solve import solve_online  # noqa: E402
from mtsp.numeric import mp_solve  # noqa: E402
from mtsp.numeric.mp_online import mp_state, task_metrics_mp, MpRules  # noqa: E402
from mtsp.numeric.engine import generated_system  # noqa: E402


def rhs_state_mp(model, sm, nodes, processes, generated):
    sy = generated_system(generated, model, "", "mpmath")
    r = MpRules(nodes, processes)
    terms = sy.integrals(model, sm, rules=r)
    return (*sy.rhs_state(model, sm, rules=r, terms=terms), terms)


def flat(x):
    if isinstance(x, mpmath.matrix):
        return list(x)
    if isinstance(x, np.ndarray):
        return list(x.ravel())
    if isinstance(x, (list, tuple)):
        return [y for v in x for y in flat(v)]
    return [x]


only = sys.argv[2:]
cases = [("lin2", setup(2, 1.0, "linear", 2), 1.0, 8), ("lin3", setup(3, 0.5, "linear", 2), 0.5, 6),
         ("tanh2", setup(2, 0.2, "tanh", 2), 0.2, 8), ("relu2", setup(2, 0.5, "relu", 2), 0.5, 8),
         ("erf3k1", setup(3, 0.5, "erf", 1), 0.5, 8)]
for name, su, t, nodes in cases:
    if only and name not in only:
        continue
    model = theory_model(su)
    st = solve_online(su, times=[t], generated=GENERATED, processes=1).state(t)
    with mpmath.workdps(20):
        sm = mp_state(st)
        t0 = time.perf_counter()
        dQ, dR, dV, loss, terms = rhs_state_mp(model, sm, nodes, processes=1, generated=GENERATED)
        dt = time.perf_counter() - t0
        for k in sorted(terms):
            print(name, k, " ".join(mpmath.nstr(x, 22) for x in flat(terms[k])))
        for lab, v in (("dQ", dQ), ("dR", dR), ("dV", dV), ("loss", loss)):
            print(name, lab, " ".join(mpmath.nstr(x, 22) for x in flat(v)))
        t1 = time.perf_counter()
        if model.linear or model.K == 1:
            m = task_metrics_mp(model, sm, nodes if model.linear else None, processes=1)
            print(name, "metrics", " ".join(mpmath.nstr(x, 22) for r in m for x in r))
        print(name, "TIME rhs", f"{dt:.2f}", "metrics", f"{time.perf_counter() - t1:.2f}", file=sys.stderr, flush=True)
for name, su in (("solve_lin2", setup(2, 0.2, "linear", 2)), ("solve_tanh1", setup(2, 0.2, "tanh", 1))):
    if only and name not in only:
        continue
    t0 = time.perf_counter()
    r = mp_solve.solve_online_mp(su, dps=20, nodes=12, metric_nodes=16, processes=1, generated=GENERATED)
    print(name, "stats", r.stats["nfev"], r.stats["steps"], r.stats["rejected"])
    for k, v in r.tasks.items():
        print(name, k, v)
    with mpmath.workdps(20):
        for tt, y in sorted(r.states.items()):
            print(name, "state", tt, " ".join(mpmath.nstr(x, 22) for x in flat(y)))
    print(name, "TIME", f"{time.perf_counter() - t0:.2f}", file=sys.stderr, flush=True)
