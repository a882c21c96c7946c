"""The mp errors of nonlinear trunks (`mp_errors.nonlinear_metrics_mp`, nodes 48 / loss 32, dps 20) of chosen
states as benchmarks/mp_errors_random_states.py draws them, with 22 digits and the seconds per evaluation: run
it in two trees alternately to compare their numbers and times.
Run: PYTHONPATH=. python benchmarks/mp_errors_values.py SEED TRIAL[,TRIAL...]
(benchmarks/results/mp_errors_one_algorithm_before_after.txt)."""
import sys
import time
import random
sys.path.insert(0, ".")
sys.path.insert(0, "benchmarks")
import mpmath  # noqa: E402
from random_trunk_states import draw_setup, solved_state  # noqa: E402
from mtsp.numeric.model import State  # noqa: E402
from mtsp.numeric.mp_online import as_mp, mp_state  # noqa: E402
from mtsp.numeric import mp_errors  # noqa: E402
rng = random.Random(int(sys.argv[1]))
want = [int(x) for x in sys.argv[2].split(",")]
for trial in range(max(want) + 1):
    su, act, K, C, norm, al, sc = draw_setup(rng)
    if trial not in want:
        continue
    m, tt, st = solved_state(su, sc)
    with mpmath.workdps(20):
        sm = mp_state(st)
        Cm = m.field_cov(sm, as_mp)
        sm = State(sm.Q, sm.R, tuple(mpmath.matrix(v.tolist()) for v in sm.V))
        t0 = time.perf_counter()
        r = mp_errors.nonlinear_metrics_mp(m, sm, Cm, 0, nodes=48, loss_nodes=32)
        print(trial, act, K, C, norm, " ".join(mpmath.nstr(x, 22) for x in r), "%.1f s" % (time.perf_counter() - t0), flush=True)
