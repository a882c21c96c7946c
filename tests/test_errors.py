"""The error hierarchy (mtsp.errors) and how the command line maps it to exit statuses."""
import math
import pickle

import pytest

from mtsp.cli import main
from mtsp.setup import setup_from_toml
from mtsp.errors import (ConvergenceError, MtspError, ReachError, RequestError, SetupError,
                         exit_status)

TINY = """
name = "tiny"
[[tasks]]
name = "A"
classes = 2
noise = 0.3
[student]
kind = "glm"
init_scale = 0.0
[training]
protocol = "online"
lr = 0.5
times = [0.5, 1]
"""

K4_TANH = """
[[tasks]]
name = "A"
classes = 2
[student]
kind = "shared"
hidden = 4
activation = "tanh"
[training]
protocol = "online"
lr = 0.5
times = [0.1]
"""


def write(tmp_path, text):
    p = tmp_path / "setup.toml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("cls, builtin", [(SetupError, ValueError), (RequestError, ValueError),
                                          (ReachError, NotImplementedError),
                                          (ConvergenceError, RuntimeError)])
def test_key_reason_message_and_pickling(cls, builtin):
    e = cls("tasks.B.noise", "must be >= 0, got -1")
    assert str(e) == "tasks.B.noise: must be >= 0, got -1"
    assert (e.key, e.reason) == ("tasks.B.noise", "must be >= 0, got -1")
    assert isinstance(e, MtspError) and isinstance(e, builtin)   # old `except` clauses still catch it
    back = pickle.loads(pickle.dumps(e))                          # across worker processes
    assert type(back) is cls and str(back) == str(e) and back.key == e.key


def test_convergence_error_carries_residual_and_status():
    e = ConvergenceError("theory", "did not converge", residual=math.inf, status={"t": 0.5})
    back = pickle.loads(pickle.dumps(e))
    assert back.residual == math.inf and back.status == {"t": 0.5}
    assert ConvergenceError("theory", "x").residual is None


def test_old_import_paths_name_the_same_classes():
    from mtsp.numeric.solve import ConvergenceError as old_convergence
    from mtsp.numeric.sweep import SweepError
    from mtsp.setup import SetupError as old_setup
    assert old_convergence is ConvergenceError and old_setup is SetupError
    assert issubclass(SweepError, RequestError)


def test_exit_statuses():
    assert [exit_status(c("k", "r")) for c in (SetupError, RequestError, ReachError,
                                               ConvergenceError, MtspError)] == [2, 2, 2, 3, 2]
    assert exit_status(ValueError("k: r")) is None   # a bare ValueError is a bug, whatever its text


def test_reach_error_exits_2_naming_the_key(tmp_path, capsys):
    """A valid setup outside the mp path's reach (K = 4 nonlinear trunk): refused before solving."""
    assert main(["solve", write(tmp_path, K4_TANH), "--precision", "mp", "-q"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == ("mtsp: error: precision: the mp back-end of nonlinear trunks "
                                 "covers K ≤ 3 (got K = 4)\n")


def test_request_error_exits_2(tmp_path, capsys):
    assert main(["solve", write(tmp_path, TINY), "--mp-nodes", "8", "-q"]) == 2
    assert capsys.readouterr().err == "mtsp: error: --mp-nodes: applies to --precision mp only\n"


def test_non_convergence_exits_3_with_the_residual(tmp_path, capsys, monkeypatch):
    """The integrator's failure reaches the user as ConvergenceError (key "theory", the
    integrator's status and its last error norm), exit status 3 — from the one driver step
    (`trajectory.integrate_theory`) of both the double and the mp solve."""
    import mtsp.api as solve_mod   # derive, then numeric.solve
    import mtsp.numeric.trajectory as trajectory
    from mtsp.numeric.integrators import IntegrationFailed

    def failing(f, y0, t_end, **kw):
        raise IntegrationFailed("step size 1e-17 below the resolution of t = 0.25",
                                t=0.25, step=1e-17, error_norm=7.5)
    monkeypatch.setattr(trajectory, "integrate", failing)
    for precision in ("double", "mp"):
        with pytest.raises(ConvergenceError) as info:
            solve_mod.solve(setup_from_toml(TINY), processes=1, precision=precision, dps=15)
        assert info.value.residual == 7.5 and info.value.status["t"] == 0.25
    assert main(["solve", write(tmp_path, TINY), "--json"]) == 3
    out, err = capsys.readouterr()
    assert out == "" and err == ("mtsp: error: theory: the ODE integration did not converge: step "
                                 "size 1e-17 below the resolution of t = 0.25 (residual 7.5)\n")


def test_any_other_exception_is_a_bug_and_propagates(tmp_path, monkeypatch):
    import mtsp.cli as cli

    def broken(*a, **k):
        raise ValueError("engine: looks keyed but is a bug")
    monkeypatch.setattr(cli, "_theory", broken)
    with pytest.raises(ValueError, match="looks keyed"):
        main(["solve", write(tmp_path, TINY), "-q"])


@pytest.mark.parametrize("field, value", [("budget", 0), ("qmc_replicates", 2.5), ("qmc_seed", -1),
                                          ("pair_qmc", -1), ("fast_labels", 1), ("joint_labels", None),
                                          ("cut_nodes3", (8, 8)), ("cut_nodes3", [8, 8, 8]),
                                          ("cut_errors", "yes"), ("cut_loss_nodes", -1), ("label_logit_nodes", 0)])
def test_accuracy_refuses_invalid_values_naming_the_field(field, value):
    from mtsp.numeric.online import Accuracy
    with pytest.raises(RequestError, match=rf"^accuracy\.{field}: expected"):
        Accuracy(**{field: value})
    Accuracy(**{field: Accuracy.__dataclass_fields__[field].default})   # its default passes


def test_mp_split_smooth_is_validated():
    from mtsp.numeric.mp_online import MpRules
    with pytest.raises(RequestError, match="^split_smooth: "):
        MpRules(split_smooth="no")
