"""Time one mp right-hand side and one evaluation of task A's mp errors (gen, label, loss) at the
double solve's state at t = 0.2 of `mp_solve.setup(3, 0.2, "tanh", 2)` (two three-class tasks on a
shared tanh K = 2 trunk), dps 20, default nodes, one process.  ROOT is a checkout of mtsp (default
"."), so that a worktree at an older commit can be timed one after the other with this one.
Run: python benchmarks/mp_one_state.py [ROOT]
"""
import sys
import time

root = sys.argv[1] if len(sys.argv) > 1 else "."
sys.path.insert(0, root)
sys.path.insert(0, root + "/benchmarks")

import mpmath  # noqa: E402
from mp_solve import setup  # noqa: E402

from mtsp.numeric.model import theory_model  # noqa: E402
from mtsp.numeric.engine import generated_system  # noqa: E402
from mtsp.numeric.mp_online import MpRules, mp_state, task_metrics_mp  # noqa: E402
from mtsp.derive import GENERATED  # noqa: E402
from mtsp.numeric.solve import solve_online  # noqa: E402

su = setup(3, 0.2, "tanh", 2)
model = theory_model(su)
st = solve_online(su, times=[0.2], generated=GENERATED).state(0.2)
with mpmath.workdps(20):
    sm = mp_state(st)
    t0 = time.perf_counter()
    r = generated_system(GENERATED, model, "", "mpmath").rhs_state(model, sm, rules=MpRules(24, 1))
    t_rhs = time.perf_counter() - t0
    t0 = time.perf_counter()
    e = task_metrics_mp(model, sm, tasks=[0])[0]
    t_err = time.perf_counter() - t0
print(f"{root}: one mp right-hand side {t_rhs:.1f} s (dQ00 {mpmath.nstr(r[0][0, 0], 17)}); errors of task A "
      f"(gen, label, loss) {t_err:.1f} s: {[mpmath.nstr(x, 17) for x in e]}", flush=True)
