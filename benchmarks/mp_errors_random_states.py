"""Random-state robustness of the mp errors of nonlinear trunks (K ≤ 2, `mp_online.task_metrics_mp`): (outer / loss-inner)
nodes (32/24, 48/32, 64/48) against (128/64) on random setups and times, logits scaled ×1 or ×3.
Run: PYTHONPATH=. python benchmarks/mp_errors_random_states.py SEED TRIALS (session 8: seed 1, 40 trials,
benchmarks/results/mp_errors_random_states_seed1.txt)."""
import sys
import time
import random
sys.path.insert(0, ".")
sys.path.insert(0, "benchmarks")
from dataclasses import replace
import mpmath
from random_trunk_states import draw_setup, solved_state
from mtsp.numeric.mp_online import MP_ACCURACY, mp_state, task_metrics_mp


def errors_mp(m, sm, nodes, loss_nodes):
    return task_metrics_mp(m, sm, acc=replace(MP_ACCURACY, cut_nodes=nodes, cut_loss_nodes=loss_nodes), tasks=[0])[0]


rng = random.Random(int(sys.argv[1]))
worst = {}
for trial in range(int(sys.argv[2])):
    su, act, K, C, norm, al, _ = draw_setup(rng, scale_per_head=True)
    m, tt, st = solved_state(su, None, rng)
    with mpmath.workdps(20):
        sm = mp_state(st)
        t0 = time.perf_counter()
        try:
            ref = errors_mp(m, sm, 128, 64)
        except NotImplementedError as e:
            print(trial, "refused", e)
            continue
        tref = time.perf_counter() - t0
        row = []
        for n, ln in [(32, 24), (48, 32), (64, 48)]:
            t0 = time.perf_counter()
            r = errors_mp(m, sm, n, ln)
            d = [float(abs(a - b)) for a, b in zip(r, ref)]
            worst[n] = [max(x, y) for x, y in zip(worst.get(n, [0, 0, 0]), d)]
            row.append(f"{n}/{ln}: " + " ".join(f"{x:.1e}" for x in d) + f" ({time.perf_counter()-t0:.1f}s)")
    print(trial, act, f"K={K} C={C} norm={norm} al={al:.2f} t={tt}", " | ".join(row), f"ref {tref:.0f}s", flush=True)
print("worst", {k: [f"{x:.1e}" for x in v] for k, v in worst.items()})
