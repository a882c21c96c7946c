"""Theory vs simulation on structures beyond the two-task suite: three tasks (glm; tanh on separate
inputs; relu K = 3 on shared inputs), six classes, wide linear and tanh trunks (N = 1000, 8 seeds;
|Δ| ≤ 4 SE + 0.005 as in random_setups.py).

    PYTHONPATH=. python benchmarks/more_structures.py
"""
import time
from mtsp.setup import setup_from_dict
from mtsp.api import solve   # derive, then numeric
from mtsp.validate.simulate import simulate
cases = [
 ("3 tasks glm C=2,3,4", {"tasks": [{"name": "A", "classes": 2}, {"name": "B", "classes": 3, "noise": 0.5}, {"name": "C", "classes": 4, "noise": 1.0}],
   "teacher": {"alignment": 0.5}, "student": {"kind": "glm", "init_scale": 0.2}, "training": {"protocol": "online", "lr": 0.5, "times": [2.0, 4.0], "inputs": "shared"}}),
 ("3 tasks tanh K=2 separate", {"tasks": [{"name": "A", "classes": 2}, {"name": "B", "classes": 3, "noise": 0.5}, {"name": "C", "classes": 2, "noise": 1.0, "weight": 2.0}],
   "teacher": {"alignment": 0.9}, "student": {"kind": "shared", "hidden": 2, "activation": "tanh", "init_scale": 0.3}, "training": {"protocol": "online", "lr": 0.5, "times": [2.0, 4.0], "inputs": "separate"}}),
 ("3 tasks relu K=3 shared", {"tasks": [{"name": "A", "classes": 2}, {"name": "B", "classes": 2, "noise": 0.5}, {"name": "C", "classes": 3}],
   "teacher": {"alignment": 0.0}, "student": {"kind": "shared", "hidden": 3, "activation": "relu", "init_scale": 0.3}, "training": {"protocol": "online", "lr": 0.5, "times": [2.0, 4.0], "inputs": "shared"}}),
 ("1 task C=6 erf K=2", {"tasks": [{"name": "A", "classes": 6, "noise": 0.3}],
   "teacher": {"alignment": 0.0}, "student": {"kind": "shared", "hidden": 2, "activation": "erf", "init_scale": 0.3}, "training": {"protocol": "online", "lr": 0.5, "times": [2.0, 4.0]}}),
 ("2 tasks linear K=6 C=5", {"tasks": [{"name": "A", "classes": 5}, {"name": "B", "classes": 5, "noise": 0.5}],
   "teacher": {"alignment": 0.5}, "student": {"kind": "shared", "hidden": 6, "activation": "linear", "init_scale": 0.3}, "training": {"protocol": "online", "lr": 0.5, "times": [2.0, 4.0]}}),
 ("2 tasks tanh K=5", {"tasks": [{"name": "A", "classes": 3}, {"name": "B", "classes": 2, "noise": 0.5}],
   "teacher": {"alignment": 0.5}, "student": {"kind": "shared", "hidden": 5, "activation": "tanh", "init_scale": 0.3}, "training": {"protocol": "online", "lr": 0.5, "times": [2.0, 4.0]}}),
]
for name, d in cases:
    d["name"] = name
    s = setup_from_dict(d)
    t0 = time.perf_counter()
    th = solve(s).to_json_dict()
    t1 = time.perf_counter()
    sim = simulate(s, N=1000, seeds=8, grid=0).to_json_dict()
    t2 = time.perf_counter()
    worst = 0
    ok = True
    for tn, v in th["tasks"].items():
        for k in range(2):
            diff = abs(v["gen_error"][k] - sim["tasks"][tn]["gen_error"][k])
            se = sim["tasks"][tn]["gen_error_se"][k]
            worst = max(worst, diff / se)
            ok &= diff <= 4 * se + 0.005
    print(f"[{'ok' if ok else 'FAIL'}] {name}: theory {t1-t0:.1f}s sim {t2-t1:.1f}s max|z| {worst:.2f}", flush=True)
