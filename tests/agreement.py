"""Theory against simulation in the test suite: the criterion of `mtsp validate`,

    |theory − simulation| ≤ n_se · SE + floor        (4 SE + 0.003 by default),

applied to gen_error, label_error and test_loss at every requested time and to the early-stopped
best_gen_error and best_test_loss (SE: the simulation's standard error over seeds, at the argmin
of its seed-averaged curve; for gen_error combined in quadrature with the theory's quadrature
error where it reports one)."""
import numpy as np

N_SE, FLOOR = 4.0, 0.003
KEYS = ("gen_error", "label_error", "test_loss")
BEST_KEYS = ("gen_error", "test_loss")


def assert_agrees(theory, sim, which="tasks", n_se=N_SE, floor=FLOOR):
    """Assert the criterion for every task of `theory` (a SolveResult) and `sim` (a
    SimulationResult) in section `which` ("tasks" or "single"); return the worst
    |diff| / tolerance over all compared values (1 would be the edge)."""
    worst = 0.0
    sim_all = getattr(sim, which)
    for name, th in theory.to_json_dict()[which].items():
        s = sim_all[name]
        for key in KEYS:
            se = np.asarray(s[f"{key}_se"], float)
            if key == "gen_error" and "gen_error_quad_se" in th:
                se = np.hypot(se, np.asarray(th["gen_error_quad_se"], float))
            diff = np.asarray(th[key], float) - s[key]
            tol = n_se * se + floor
            assert np.all(np.abs(diff) <= tol), (which, name, key, diff, tol)
            worst = max(worst, float(np.max(np.abs(diff) / tol)))
        for key in BEST_KEYS:
            i = int(np.argmin(s[key]))
            tol = n_se * float(s[f"{key}_se"][i]) + floor
            diff = th[f"best_{key}"] - s[f"best_{key}"]
            assert abs(diff) <= tol, (which, name, f"best_{key}", diff, tol)
            worst = max(worst, abs(diff) / tol)
    return worst
