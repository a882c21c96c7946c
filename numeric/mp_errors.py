"""The errors and test loss of nonlinear trunks (K ≤ 3, C_t ≤ 3) at arbitrary precision: the
double path's algorithm (`metrics.cut_rule_hits`, `metrics.cut_rule_loss`: the h-domain cut along
the student's ties, `tie_cuts`; K ≤ 2 with the innermost coordinate exact, `slab_cone`) executed
in the `cone.MP` arithmetic (`mp_online.MpRules`), at node counts of its own and with the checks of
what the mp route cannot take said as `ReachError`s.

Node counts, accuracy and cost: docs/PRECISION.md ("The errors of nonlinear trunks with K ≤ 2"),
benchmarks/results/mp_errors_random_states_seed1.txt (K ≤ 2: within 3.0e-13 of 128 outer nodes at
ERROR_NODES = 48) and the K = 3 tests in tests/test_mp.py (≈ 1e-8 at ERROR_NODES3, minutes per task).
"""
from __future__ import annotations

import mpmath

from mtsp.errors import ReachError

from .cone import MP
from .metrics import cut_rule_hits, cut_rule_loss
from .model import TheoryModel

__all__ = ["nonlinear_metrics_mp", "check_errors_mp", "ERROR_NODES"]

ERROR_NODES = 48  # K ≤ 2: tanh–sinh nodes per outer piece (the innermost coordinate is exact)
LABEL_LOGIT_NODES = 96   # per half-line of h_k in the label part of the test loss
ERROR_NODES3 = (16, 24, 16)  # K = 3: per level (η₁, η₂, η₃); ≈ 1e-8, minutes per task


def check_errors_mp(model: TheoryModel) -> None:
    if model.K > 3:
        raise ReachError("precision", f"the mp errors of nonlinear trunks cover K ≤ 3 (got K = {model.K}): "
                         "for K ≥ 4 the cut rule would need cut hypersurfaces of 3 dimensions")
    if max(model.classes) > 3:
        raise ReachError("precision", "the mp errors of nonlinear trunks cover C_t ≤ 3 (labels in closed form given h)")


def _check_labels(model, F, t, label):
    """The label cones given h must be nondegenerate (the closed forms take no singular covariance)."""
    from .cone import label_cones
    tiny = mpmath.mpf(10) ** (-mpmath.mp.dps + 5)
    H = MP.matmul(MP.rows(model.rows_h()), F)
    for rows in [model.rows_lambda(t)] + ([model.rows_nu(t)] if label else []):
        for _, S, _ in label_cones(MP, MP.matmul(MP.rows(rows), F), H)[0]:
            if min(S[j, j] for j in range(len(S))) <= tiny:
                raise ReachError("precision", "the mp errors of nonlinear trunks need labels that are not "
                                 "decided by h (a conditional label variance is zero here)")
            if len(S) == 2 and S[0, 0] * S[1, 1] - S[0, 1] ** 2 <= tiny * S[0, 0] * S[1, 1]:
                raise ReachError("precision", "the mp errors of nonlinear trunks need a nonsingular conditional label "
                                 "covariance (two logit differences of the teacher are dependent given h)")


def nonlinear_metrics_mp(model: TheoryModel, st, C, t: int, nodes: int | None = None,
                         label: bool = True, loss: bool = True, loss_nodes: int | None = None):
    """(gen_error, label_error, test_loss) of task t in mp for a nonlinear trunk with K ≤ 3
    (``nodes``: K ≤ 2 the outer nodes per interval, default ERROR_NODES; K = 3 per level, one
    count or (n₁, n₂, n₃), default ERROR_NODES3; ``loss_nodes``: K ≤ 2, the nodes per innermost
    piece of E[logsumexp z(h)], default ``nodes``).
    ``st``: mp state (Q, R, V); ``C``: the mp field covariance."""
    from .mp_online import MpRules
    check_errors_mp(model)
    n = nodes or (ERROR_NODES3 if model.K == 3 else ERROR_NODES)
    st = st.map(MP.rows)
    F = MpRules.factor(MP.rows(C))
    _check_labels(model, F, t, label)
    if not st.Q[0, 0] > 0:
        raise ReachError("precision", "the mp errors of nonlinear trunks need h₁ with nonzero variance "
                         "(Q₁₁ = 0: the student's output is a tie, not a cut domain)")
    rules = MpRules()
    out = cut_rule_hits(model, st, F, t, n, label, rules)
    if out is None:
        raise ReachError("precision", f"the mp errors of nonlinear trunks need a nonsingular Q (K = {model.K})")
    gen, lab, rule = out
    tl = cut_rule_loss(model, st, F, t, rule, loss_nodes or n, LABEL_LOGIT_NODES, rules) if loss else mpmath.nan
    return 1 - gen, (1 - lab) if label else mpmath.nan, tl
