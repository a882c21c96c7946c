"""Random-state robustness of the mp errors of nonlinear trunks (K ≤ 2, `mp_errors`): (outer / loss-inner)
nodes (32/24, 48/32, 64/48) against (128/64) on random setups and times, logits scaled ×1 or ×3.
Run: PYTHONPATH=. python benchmarks/mp_errors_random_states.py SEED TRIALS (session 8: seed 1, 40 trials,
benchmarks/results/mp_errors_random_states_seed1.txt)."""
import sys
import time
import random
sys.path.insert(0, ".")
sys.path.insert(0, "benchmarks")
import mpmath
from random_trunk_states import draw_setup, solved_state
from mtsp.numeric.model import State
from mtsp.numeric.mp_online import as_mp, mp_state
from mtsp.numeric import mp_errors
rng = random.Random(int(sys.argv[1]))
worst = {}
for trial in range(int(sys.argv[2])):
    su, act, K, C, norm, al, _ = draw_setup(rng, scale_per_head=True)
    m, tt, st = solved_state(su, None, rng)
    with mpmath.workdps(20):
        sm = mp_state(st)
        Cm = m.field_cov(sm, as_mp)
        sm = State(sm.Q, sm.R, tuple(mpmath.matrix(v.tolist()) for v in sm.V))   # mp_errors reads V_t.rows
        t0 = time.perf_counter()
        try:
            ref = mp_errors.nonlinear_metrics_mp(m, sm, Cm, 0, nodes=128, loss_nodes=64)
        except NotImplementedError as e:
            print(trial, "refused", e)
            continue
        tref = time.perf_counter() - t0
        row = []
        for n, ln in [(32, 24), (48, 32), (64, 48)]:
            t0 = time.perf_counter()
            r = mp_errors.nonlinear_metrics_mp(m, sm, Cm, 0, nodes=n, loss_nodes=ln)
            d = [float(abs(a - b)) for a, b in zip(r, ref)]
            worst[n] = [max(x, y) for x, y in zip(worst.get(n, [0, 0, 0]), d)]
            row.append(f"{n}/{ln}: " + " ".join(f"{x:.1e}" for x in d) + f" ({time.perf_counter()-t0:.1f}s)")
    print(trial, act, f"K={K} C={C} norm={norm} al={al:.2f} t={tt}", " | ".join(row), f"ref {tref:.0f}s", flush=True)
print("worst", {k: [f"{x:.1e}" for x in v] for k, v in worst.items()})
