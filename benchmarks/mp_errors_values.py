"""The mp errors of nonlinear trunks (`mp_errors.nonlinear_metrics_mp`, nodes 48 / loss 32, dps 20) of chosen
states as benchmarks/mp_errors_random_states.py draws them, with 22 digits and the seconds per evaluation: run
it in two trees alternately to compare their numbers and times.
Run: PYTHONPATH=. python benchmarks/mp_errors_values.py SEED TRIAL[,TRIAL...]
(benchmarks/results/mp_errors_one_algorithm_before_after.txt)."""
import sys
import time
import random
sys.path.insert(0, ".")
import mpmath  # noqa: E402
from mtsp.setup import setup_from_dict  # noqa: E402
from mtsp.api import solve  # noqa: E402
from mtsp.numeric.model import theory_model, State  # noqa: E402
from mtsp.numeric.mp_online import as_mp, mp_state  # noqa: E402
from mtsp.numeric import mp_errors  # noqa: E402
rng = random.Random(int(sys.argv[1]))
want = [int(x) for x in sys.argv[2].split(",")]
for trial in range(max(want) + 1):
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
    sc = rng.choice([1.0, 3.0])
    if trial not in want:
        continue
    m = theory_model(su)
    tt = su.training.times[-1]
    st = m.unpack(solve(su, processes=1).trajectory(tt))
    st = State(st.Q, st.R, tuple(v * sc for v in st.V))
    with mpmath.workdps(20):
        sm = mp_state(st)
        Cm = m.field_cov(sm, as_mp)
        sm = State(sm.Q, sm.R, tuple(mpmath.matrix(v.tolist()) for v in sm.V))
        t0 = time.perf_counter()
        r = mp_errors.nonlinear_metrics_mp(m, sm, Cm, 0, nodes=48, loss_nodes=32)
        print(trial, act, K, C, norm, " ".join(mpmath.nstr(x, 22) for x in r), "%.1f s" % (time.perf_counter() - t0), flush=True)
