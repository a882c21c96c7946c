"""Random-state robustness of the mp errors of nonlinear trunks (K ≤ 2, `mp_errors`): (outer / loss-inner)
nodes (32/24, 48/32, 64/48) against (128/64) on random setups and times, logits scaled ×1 or ×3.
Run: PYTHONPATH=. python benchmarks/mp_errors_random_states.py SEED TRIALS (session 8: seed 1, 40 trials,
benchmarks/results/mp_errors_random_states_seed1.txt)."""
import sys
import time
import random
sys.path.insert(0, ".")
import mpmath
from mtsp.setup import setup_from_dict
from mtsp.api import solve   # derive, then numeric
from mtsp.numeric.model import theory_model, State
from mtsp.numeric.mp_online import as_mp, mp_state
from mtsp.numeric import mp_errors
rng = random.Random(int(sys.argv[1]))
worst = {}
for trial in range(int(sys.argv[2])):
    act = rng.choice(["tanh", "erf", "relu"])
    K = rng.choice([1, 2, 2])
    C = rng.choice([2, 3])
    norm = rng.choice([1.0, 3.0, 6.0])
    al = rng.uniform(0, 0.95)
    su = setup_from_dict({"tasks": [{"name": "A", "classes": C, "noise": rng.choice([0.0, 0.3, 1.0])},
                                    {"name": "B", "classes": rng.choice([2, 3]), "noise": 0.0}],
                          "teacher": {"alignment": al, "norm": norm},
                          "student": {"kind": "shared", "hidden": K, "activation": act, "init_scale": rng.choice([0.3, 1.0])},
                          "training": {"protocol": "online", "lr": 0.5, "times": [rng.choice([0.5, 2.0, 8.0])]}})
    m = theory_model(su)
    tt = su.training.times[-1]
    st = m.unpack(solve(su, processes=1).trajectory(tt))
    st = State(st.Q, st.R, tuple(v * rng.choice([1.0, 3.0]) for v in st.V))
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
