"""The mp errors of nonlinear trunks (`mp_online.task_metrics_mp`, nodes 48 / loss 32, dps 20) of chosen
states as benchmarks/mp_errors_random_states.py draws them, with 22 digits and the seconds per evaluation: run
it in two trees alternately to compare their numbers and times.
Run: PYTHONPATH=. python benchmarks/mp_errors_values.py SEED TRIAL[,TRIAL...]
(benchmarks/results/mp_errors_one_algorithm_before_after.txt)."""
import sys
import time
import random
sys.path.insert(0, ".")
sys.path.insert(0, "benchmarks")
from dataclasses import replace  # noqa: E402
import mpmath  # noqa: E402
from random_trunk_states import draw_setup, solved_state  # noqa: E402
from mtsp.numeric.mp_online import MP_ACCURACY, mp_state, task_metrics_mp  # noqa: E402
rng = random.Random(int(sys.argv[1]))
want = [int(x) for x in sys.argv[2].split(",")]
for trial in range(max(want) + 1):
    su, act, K, C, norm, al, sc = draw_setup(rng)
    if trial not in want:
        continue
    m, tt, st = solved_state(su, sc)
    with mpmath.workdps(20):
        sm = mp_state(st)
        t0 = time.perf_counter()
        r = task_metrics_mp(m, sm, acc=replace(MP_ACCURACY, cut_nodes=48, cut_loss_nodes=32), tasks=[0])[0]
        print(trial, act, K, C, norm, " ".join(mpmath.nstr(x, 22) for x in r), "%.1f s" % (time.perf_counter() - t0), flush=True)
