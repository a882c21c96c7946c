"""The random nonlinear-trunk states of the mp-errors benchmarks (mp_errors_random_states.py,
mp_errors_values.py, loss_route_nonlinear.py): one draw from ``rng`` (the same calls in the same order
in all three, so a seed gives the same states): a two-task online setup with a K ≤ 2 relu / erf / tanh
trunk, solved to its one time, the heads scaled ×1 or ×3 (one draw for both heads, or one per head as
mp_errors_random_states.py has drawn them)."""
from mtsp.api import solve   # derive, then numeric
from mtsp.numeric.model import State, theory_model
from mtsp.setup import setup_from_dict


def draw_setup(rng, scale_per_head: bool = False):
    """(setup, activation, K, C, norm, alignment, head scales), drawing from ``rng`` only."""
    act = rng.choice(["tanh", "erf", "relu"])
    K = rng.choice([1, 2, 2])
    C = rng.choice([2, 3])
    norm = rng.choice([1.0, 3.0, 6.0])
    al = rng.uniform(0, 0.95)
    su = setup_from_dict({"tasks": [{"name": "A", "classes": C, "noise": rng.choice([0.0, 0.3, 1.0])},
                                    {"name": "B", "classes": rng.choice([2, 3]), "noise": 0.0}],
                          "teacher": {"alignment": al, "norm": norm},
                          "student": {"kind": "shared", "hidden": K, "activation": act,
                                      "init_scale": rng.choice([0.3, 1.0])},
                          "training": {"protocol": "online", "lr": 0.5, "times": [rng.choice([0.5, 2.0, 8.0])]}})
    scales = (rng.choice([1.0, 3.0]),) * len(su.tasks) if not scale_per_head else None
    return su, act, K, C, norm, al, scales


def solved_state(su, scales, rng=None):
    """(model, time, State at the setup's last time with head t × scales[t]; scales None: one draw
    per head from ``rng``, after the solve)."""
    m = theory_model(su)
    tt = su.training.times[-1]
    st = m.unpack(solve(su, processes=1).trajectory(tt))
    scales = scales or [rng.choice([1.0, 3.0]) for _ in st.V]
    return m, tt, State(st.Q, st.R, tuple(v * c for v, c in zip(st.V, scales)))
