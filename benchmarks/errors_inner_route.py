"""Which innermost treatment the errors of K ≤ 2 nonlinear trunks take (`metrics.cut_rule_hits`): the
closed form (`slab_cone`, the route) against nodes on the innermost pieces with the teacher's tie lines cut
there (`independent_checks.agreement_by_inner_nodes`, the double path's former route), in mp (dps 20) and in
double, against the closed form in mp at 128 outer nodes; times of the mp evaluations.  States as
benchmarks/mp_errors_random_states.py draws them.
Run: PYTHONPATH=. python benchmarks/errors_inner_route.py SEED TRIALS (benchmarks/results/errors_inner_route.txt)."""
import sys
import time
import random
sys.path.insert(0, ".")
import mpmath  # noqa: E402
from mtsp.setup import setup_from_dict  # noqa: E402
from mtsp.api import solve  # noqa: E402
from mtsp.numeric.model import theory_model, State  # noqa: E402
from mtsp.numeric.mp_online import MpRules, as_mp, mp_state  # noqa: E402
from mtsp.numeric.metrics import cut_rule_hits  # noqa: E402
from mtsp.numeric.independent_checks import agreement_by_inner_nodes  # noqa: E402
from mtsp.numeric.quadrature import gaussian_factor  # noqa: E402

rng = random.Random(int(sys.argv[1]))
for trial in range(int(sys.argv[2])):
    act = rng.choice(["tanh", "erf", "relu"])
    K = rng.choice([1, 2, 2])
    C = rng.choice([2, 3])
    norm = rng.choice([1.0, 3.0, 6.0])
    su = setup_from_dict({"tasks": [{"name": "A", "classes": C, "noise": rng.choice([0.0, 0.3, 1.0])},
                                    {"name": "B", "classes": rng.choice([2, 3]), "noise": 0.0}],
                          "teacher": {"alignment": rng.uniform(0, 0.95), "norm": norm},
                          "student": {"kind": "shared", "hidden": K, "activation": act, "init_scale": rng.choice([0.3, 1.0])},
                          "training": {"protocol": "online", "lr": 0.5, "times": [rng.choice([0.5, 2.0, 8.0])]}})
    scale = rng.choice([1.0, 3.0])
    m = theory_model(su)
    st = m.unpack(solve(su, processes=1).trajectory(su.training.times[-1]))
    st = State(st.Q, st.R, tuple(v * scale for v in st.V))
    F = gaussian_factor(m.field_cov(st))
    n_out = 40 if K == 2 else 64            # the double path's outer nodes
    slab_d = cut_rule_hits(m, st, F, 0, n_out, label=False)[0]
    nodes_d = {n: agreement_by_inner_nodes(m, st, F, 0, n_out, n_inner=n) for n in (40, 160)}
    with mpmath.workdps(20):
        sm, rules = mp_state(st), MpRules()
        Fm = rules.factor(m.field_cov(sm, as_mp))
        ref = cut_rule_hits(m, sm, Fm, 0, 128, label=False, rules=rules)[0]
        t0 = time.perf_counter()
        slab = cut_rule_hits(m, sm, Fm, 0, 48, label=False, rules=rules)[0]
        ts = time.perf_counter() - t0
        row = []
        for n in (48, 64):
            t0 = time.perf_counter()
            v = agreement_by_inner_nodes(m, sm, Fm, 0, 48, n_inner=n, rules=rules)
            row.append(f"nodes 48/{n} {float(abs(v - ref)):.1e} ({time.perf_counter() - t0:.1f} s)")
    print(trial, act, f"K={K} C={C} norm={norm}×{scale}", f"| mp: closed 48 {float(abs(slab - ref)):.1e} ({ts:.1f} s)",
          " ".join(row), f"| double: closed {abs(slab_d - float(ref)):.1e}",
          " ".join(f"nodes {n} {abs(v - float(ref)):.1e}" for n, v in nodes_d.items()), flush=True)
