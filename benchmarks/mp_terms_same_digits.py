"""Same mp digits before / after a change of the mp term code: every named mp integral (25 digits),
dQ, dR, dV (20 digits) and, for linear trunks, the mp metrics at the double solve's state of seven
setups (`benchmarks/mp_solve.setup`: linear C = 2 / 3 with K = 2, linear C = 3 with K = 1, tanh
K = 2 C = 3 — `mp_one_state`'s state —, relu K = 2, erf K = 1 with C = 2 / 3), dps 20; timings
(wall) on stderr.  Run with PYTHONPATH at each tree and compare the outputs:

    PYTHONPATH=/path/to/tree python benchmarks/mp_terms_same_digits.py /path/to/tree [case ...] > out.txt
"""
import sys
import time

sys.path.insert(0, sys.argv[1] + "/benchmarks")
import mpmath  # noqa: E402
from mp_solve import setup  # noqa: E402

from mtsp.derive import GENERATED  # noqa: E402
from mtsp.numeric.model import theory_model  # noqa: E402
from mtsp.numeric.engine import generated_system  # noqa: E402
from mtsp.numeric.mp_online import MpRules, mp_state, task_metrics_mp  # noqa: E402
from mtsp.numeric.solve import solve_online  # noqa: E402

only = sys.argv[2:]
cases = [("lin2", setup(2, 1.0, "linear", 2), 1.0, 24), ("lin3", setup(3, 1.0, "linear", 2), 1.0, None),
         ("lin3k1", setup(3, 1.0, "linear", 1), 0.5, 24),
         ("tanh3", setup(3, 0.2, "tanh", 2), 0.2, 24), ("relu2", setup(2, 0.5, "relu", 2), 0.5, 16),
         ("erf2k1", setup(2, 0.5, "erf", 1), 0.5, None), ("erf3k1", setup(3, 0.5, "erf", 1), 0.5, None)]
for name, su, t, nodes in cases:
    if only and name not in only:
        continue
    model = theory_model(su)
    st = solve_online(su, times=[t], generated=GENERATED).state(t)
    with mpmath.workdps(20):
        sm = mp_state(st)
        t0 = time.perf_counter()
        system, rules = generated_system(GENERATED, model, "", "mpmath"), MpRules(nodes, 1)
        terms = system.integrals(model, sm, rules=rules)
        dQ, dR, dV, loss = system.rhs_state(model, sm, rules=rules, terms=terms)
        dt = time.perf_counter() - t0
        for k in sorted(terms):
            v = terms[k]
            vals = list(v.ravel()) if hasattr(v, "ravel") else list(v) if isinstance(v, mpmath.matrix) else [v]
            print(name, k, " ".join(mpmath.nstr(x, 25) for x in vals))
        print(name, "dQ", " ".join(mpmath.nstr(x, 20) for x in dQ.ravel()))
        print(name, "dR", " ".join(mpmath.nstr(x, 20) for x in dR.ravel()))
        for v in dV:
            print(name, "dV", " ".join(mpmath.nstr(x, 20) for x in v.ravel()))
        if model.linear:
            t1 = time.perf_counter()
            m = task_metrics_mp(model, sm, nodes)
            print(name, "metrics", " ".join(mpmath.nstr(x, 20) for r in m for x in r))
            print(name, "TIME metrics", f"{time.perf_counter() - t1:.2f}", file=sys.stderr)
        print(name, "TIME rhs", f"{dt:.2f}", file=sys.stderr, flush=True)
