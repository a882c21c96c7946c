"""Fast theory-vs-simulation checks (small N, few seeds: loose but honest tolerances).

The full suite at N = 1000 is benchmarks/suite.py; here N = 400 and the criterion is
|theory − simulation| ≤ 4 SE + 0.01 (the extra floor covers the O(1/N) finite-size bias).
"""
from pathlib import Path

import pytest

from mtsp.numeric.solve import solve
from mtsp.setup import load_setup, setup_from_dict

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
torch = pytest.importorskip("torch")
from mtsp.validate.simulate import simulate  # noqa: E402

CASES = {
    "glm C=3 noisy": {"tasks": [{"name": "A", "classes": 3, "noise": 0.5}], "student": {"kind": "glm"},
                      "training": {"protocol": "online", "lr": 0.5, "times": [1, 3]}},
    "tanh trunk, 2 tasks": {"tasks": [{"name": "A", "classes": 3, "noise": 0.5}, {"name": "B", "classes": 2}],
                            "teacher": {"alignment": 0.5},
                            "student": {"kind": "shared", "hidden": 2, "activation": "tanh", "init_scale": 0.3},
                            "training": {"protocol": "online", "lr": 0.5, "times": [1, 3]}},
    "linear trunk, separate inputs": {
        "tasks": [{"name": "A", "classes": 3, "share": 2.0}, {"name": "B", "classes": 3, "noise": 0.8}],
        "teacher": {"alignment": 0.8},
        "student": {"kind": "shared", "hidden": 2, "activation": "linear", "init_scale": 0.2},
        "training": {"protocol": "online", "lr": 0.5, "times": [1, 3], "inputs": "separate"}},
}


@pytest.mark.parametrize("name", list(CASES))
def test_theory_matches_small_simulation(name):
    setup = setup_from_dict(CASES[name])
    th = solve(setup).to_json_dict()
    sim = simulate(setup, N=400, seeds=6, test_size=4000, grid=0).to_json_dict()
    for task, v in th["tasks"].items():
        s = sim["tasks"][task]
        for k, t in enumerate(th["times"]):
            d = abs(v["gen_error"][k] - s["gen_error"][k])
            assert d <= 4 * s["gen_error_se"][k] + 0.01, (task, t, v["gen_error"][k], s["gen_error"][k])


def test_benefit_signs_of_the_examples():
    """The multitask benefit Δ = single − multi has the sign the theory of the seed paper predicts."""
    related = solve(load_setup(EXAMPLES / "two_related_one_noisy.toml"), single=True)
    d_noisy = related.single["noisy"]["gen_error"][-1] - related.tasks["noisy"]["gen_error"][-1]
    d_clean = related.single["clean"]["gen_error"][-1] - related.tasks["clean"]["gen_error"][-1]
    assert d_noisy > 0.02          # the noisy task gains from its related clean partner
    assert d_clean < 0             # ... and the clean one pays a (smaller) price
    assert d_noisy > abs(d_clean)
    unrelated = solve(load_setup(EXAMPLES / "unrelated_narrow_trunk.toml"), single=True)
    for task in ("A", "B"):
        assert unrelated.single[task]["gen_error"][-1] - unrelated.tasks[task]["gen_error"][-1] < -0.05
