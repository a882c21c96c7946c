"""The double test_loss of nonlinear trunks (K ≤ 2): its route (`metrics._nonlinear_loss`, one integral over h
by `online.h_integral`) against the mp path's route executed in double (`metrics.cut_rule_loss` at outer /
logsumexp-inner / label nodes, after `cut_rule_hits`), both against that route in mp at 128 / 64 / 96 nodes
(dps 20); seconds per evaluation.  States by `random_trunk_states` (one scale for both heads).
Run: PYTHONPATH=. python benchmarks/loss_route_nonlinear.py SEED TRIALS (benchmarks/results/loss_route_nonlinear.txt)."""
import sys
import time
import random
sys.path.insert(0, ".")
sys.path.insert(0, "benchmarks")
import mpmath  # noqa: E402
from random_trunk_states import draw_setup, solved_state  # noqa: E402
from dataclasses import replace  # noqa: E402
from mtsp.numeric.mp_online import MP_ACCURACY, mp_state, task_metrics_mp  # noqa: E402
from mtsp.numeric import metrics  # noqa: E402
from mtsp.numeric.online import Accuracy  # noqa: E402
from mtsp.numeric.quadrature import gaussian_factor  # noqa: E402
rng = random.Random(int(sys.argv[1]))
worst = {}
for trial in range(int(sys.argv[2])):
    su, act, K, C, norm, al, sc = draw_setup(rng)
    m, tt, st = solved_state(su, sc)
    acc = Accuracy()
    F = gaussian_factor(m.field_cov(st))
    t0 = time.perf_counter()
    cur = metrics._nonlinear_loss(m, st, F, 0, acc)
    tc = time.perf_counter() - t0
    row = []
    for n, ln, lab in [(40, 40, 96), (40, 64, 96), (64, 64, 128)]:
        t0 = time.perf_counter()
        g, _, rule = metrics.cut_rule_hits(m, st, F, 0, n, False)
        new = metrics.cut_rule_loss(m, st, F, 0, rule, ln, lab)
        row.append((n, ln, lab, new, time.perf_counter() - t0))
    with mpmath.workdps(20):
        ref = task_metrics_mp(m, mp_state(st), acc=replace(MP_ACCURACY, cut_nodes=128, cut_loss_nodes=64),
                              label=False, tasks=[0])[0][2]
    out = [f"h_integral {abs(cur - float(ref)):.1e} ({tc:.2f}s)"] + [f"cut {n}/{ln}/{lab} {abs(v - float(ref)):.1e} ({t:.2f}s)" for n, ln, lab, v, t in row]
    for k, v in [("h_integral", cur)] + [(f"{n}/{ln}/{lab}", v) for n, ln, lab, v, _ in row]:
        worst[k] = max(worst.get(k, 0), abs(v - float(ref)))
    print(trial, act, f"K={K} C={C} norm={norm} x{sc[0]}", " | ".join(out), flush=True)
print("worst", {k: f"{v:.1e}" for k, v in worst.items()})
