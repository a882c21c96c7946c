"""The online theory at arbitrary precision: `online`'s term code and `metrics.task_metrics` run
with `MpRules` on states of object arrays of mpf (`mp_state`): `mp_quadrature.mp_rule`'s product
rules, `mp_pointwise`'s formulas, the sign patterns over a nonlinear trunk's h of `sign_patterns`,
the label–label term by `independent_checks.label_label_joint`. Scope: `check_mp`. Routes and
their measurements: docs/PRECISION.md.
"""
from __future__ import annotations

import mpmath
import numpy as np

from mtsp.errors import ReachError, RequestError
from mtsp.model import State, TheoryModel, cone_stack, label_label_tasks

from .cone import MP, gaussian_factor, label_cones, truncated_normal
from .independent_checks import agreement_by_route, label_label_joint
from .mp_pointwise import ACTIVATION_PAIRS, cone1_probability, cone1_stein, cone2_probability, cone2_stein
from .mp_quadrature import DEFAULT_NODES, mp_rule
from .metrics import task_metrics
from .online import Accuracy, _finish_linear, _linear_part, _nonlinear_part, _orthant_signs, label_given_h
from .quadrature import ConeResult, cone_expectation, gaussian_factor as double_factor

__all__ = ["MpRules", "mp_state", "as_mp", "check_mp", "task_metrics_mp", "MP_ACCURACY", "sign_patterns",
           "one_rule_error", "SPLIT_TOL"]

SPLIT_TOL = 1e-8   # the one-rule route's largest model error (`one_rule_error`) before the split is taken
PP_NODES = {1: 64, 2: 40, 3: 24, 4: 12}   # teacher-only cone probabilities (docs/PRECISION.md, "The mp kernel")
# the cut rule's nodes of nonlinear trunks' metrics in mp (docs/PRECISION.md, "The errors of nonlinear trunks")
MP_ACCURACY = Accuracy(cut_nodes=48, cut_nodes3=(16, 24, 16), cut_loss_nodes=48, label_logit_nodes=96)


def as_mp(a):
    """Numbers (arrays, mpmath matrices, lists) as object arrays of mpf; floats convert exactly."""
    out = np.array(MP.to_mp(a), dtype=object)
    return out.reshape(a.shape) if isinstance(a, np.ndarray) else out


def mp_state(st: State) -> State:
    return st.map(as_mp)


def check_mp(model: TheoryModel, st: State | None = None, factor=None, tasks=(), label: bool = True) -> None:
    """ReachError("precision", reason) for C_t > 3 or a nonlinear trunk with K > 3; with an mp state
    ``st`` (``factor`` of its field covariance), for the errors of a nonlinear trunk's ``tasks`` where
    a label cone given h is singular at the working precision or Q₁₁ = 0 (no cut domain)."""
    if max(model.classes) > 3:
        raise ReachError("precision", f"the mp back-end covers C_t ≤ 3 (got classes {list(model.classes)})")
    if not model.linear and model.K > 3:
        raise ReachError("precision", f"the mp back-end of nonlinear trunks covers K ≤ 3 (got K = {model.K})")
    if st is None or model.linear:
        return
    tiny = mpmath.mpf(10) ** (-mpmath.mp.dps + 5)
    H = MP.matmul(MP.rows(model.rows_h()), factor)
    for t in tasks:
        for rows in [model.rows_lambda(t)] + ([model.rows_nu(t)] if label else []):
            for _, S, _ in label_cones(MP, MP.matmul(MP.rows(rows), factor), H)[0]:
                if min(S[j, j] for j in range(len(S))) <= tiny:
                    raise ReachError("precision", "the mp errors of nonlinear trunks need labels that are not "
                                     "decided by h (a conditional label variance is zero here)")
                if len(S) == 2 and S[0, 0] * S[1, 1] - S[0, 1] ** 2 <= tiny * S[0, 0] * S[1, 1]:
                    raise ReachError("precision", "the mp errors of nonlinear trunks need a nonsingular conditional "
                                     "label covariance (two logit differences of the teacher are dependent given h)")
    if not st.Q[0, 0] > 0:
        raise ReachError("precision", "the mp errors of nonlinear trunks need h₁ with nonzero variance "
                         "(Q₁₁ = 0: the student's output is a tie, not a cut domain)")


def one_rule_error(act: str, spread, n: int):
    """Relative error of the n-point Gauss–Hermite rule on E[g′(s z)²], z ~ N(0, 1), s = ``spread``,
    against the sign-orthant split at 2n nodes (Genz coordinates, tanh–sinh)."""
    f = lambda x: ACTIVATION_PAIRS[act](spread * x)[1] ** 2   # noqa: E731
    x, w = MP.gauss_hermite(n)
    one = mpmath.fsum(wi * f(xi) for xi, wi in zip(x, w))
    u, uc, wt = MP.rule01(2 * n)
    split = mpmath.mpf(0)
    for lo, hi in ((mpmath.mpf(0), mpmath.inf), (-mpmath.inf, mpmath.mpf(0))):
        y, m = truncated_normal(MP, MP.full(len(u), lo), MP.full(len(u), hi), u, uc)
        split += mpmath.fsum(wk * mk * f(yk) for yk, mk, wk in zip(y, m, wt))
    return abs(one / split - 1)


def sign_patterns(act: str, C, rows, nodes, split_smooth: bool | None = None) -> list:
    """The sign patterns of the trunk fields ``rows`` (on fields of covariance ``C``) integrated over
    separately: every orthant (`online._orthant_signs`) for relu, with ``split_smooth``, or where
    `one_rule_error` at the fields' largest spread and `mp_rule`'s nodes exceeds SPLIT_TOL; else [()]."""
    n = len(rows)
    if act != "relu" and split_smooth is None:
        dims = DEFAULT_NODES[n] if nodes is None else nodes.get(n, DEFAULT_NODES[n]) if isinstance(nodes, dict) else int(nodes)
        var = max(mpmath.fsum(r[i] * C[i][j] * r[j] for i in range(len(C)) for j in range(len(C))) for r in rows)
        split_smooth = one_rule_error(act, mpmath.sqrt(var), dims) > SPLIT_TOL
    return _orthant_signs(n) if act == "relu" or split_smooth else [()]


class MpRules:
    """`online.DoubleRules`' interface in mpmath: ``nodes`` per integrated dimension (`mp_rule`),
    ``processes`` 1, 2 or a `workers` executor, ``split_smooth`` forced or (None) by `sign_patterns`."""
    ar, sobol, pair_by_transpose = MP, False, True   # P(y_s, y_t) = P(y_t, y_s)ᵀ (exact cone probabilities)
    lift, scalar, factor = staticmethod(as_mp), staticmethod(mpmath.mpf), staticmethod(lambda C: gaussian_factor(MP, C))
    exp, log = MP.exp, MP.log
    cone1, cone1_stein = staticmethod(np.frompyfunc(cone1_probability, 2, 1)), staticmethod(np.frompyfunc(cone1_stein, 2, 1))
    cone2, cone2_stein = staticmethod(np.frompyfunc(cone2_probability, 5, 1)), staticmethod(np.frompyfunc(cone2_stein, 5, 2))
    rows, decide_at = staticmethod(lambda x: x if x.dtype == object else as_mp(x)), None
    activation = staticmethod(lambda name: np.frompyfunc(ACTIVATION_PAIRS[name], 1, 2))
    pinv_gram = staticmethod(lambda G: MP.pinv_psd(G, MP.rank_tol()))   # G⁺ over eigenvalues > rank_tol × the largest
    randomised = False   # no randomised tier: a nonlinear trunk's errors are the cut rule's, or out of reach

    def __init__(self, nodes=None, processes=1, split_smooth: bool | None = None, signs=((),), cov=None):
        if split_smooth is not None and not isinstance(split_smooth, bool):
            raise RequestError("split_smooth", f"expected None, True or False, got {split_smooth!r}")
        self.nodes, self.processes, self.split_smooth, self.signs, self.cov = nodes, processes, split_smooth, signs, cov
        self.key = (mpmath.mp.prec, repr(nodes))

    def at(self, model, st):
        """These rules with a linear trunk's routes decided in double at ``st`` (`decide_at`)."""
        rules = MpRules(self.nodes, self.processes, self.split_smooth)
        if model.linear:
            fs = st.map(lambda a: np.asarray(a, dtype=float))
            rules.decide_at = fs, double_factor(model.field_cov(fs))
        return rules

    def terms(self, model, st, factor, acc, helper=None) -> dict:
        """`online`'s integrals at ``st`` in one part (``processes`` splits the larger integrals)."""
        check_mp(model)
        rules = self.at(model, st)
        if model.linear:
            return _finish_linear(model, _linear_part(model, st, factor, acc, None, rules))
        rules.cov = model.field_cov(st, as_mp)
        rules.signs = sign_patterns(model.activation, rules.cov, MP.to_mp(model.rows_h()), self.nodes, self.split_smooth)
        return _nonlinear_part(model, st, factor, acc, None, rules)

    def expect(self, factor, cone, proj, fn, lin=None, *, skip_last_cone: bool = False, **double_rules) -> ConeResult:
        return cone_expectation(factor, cone, proj, fn, lin, skip_last_cone=skip_last_cone,
                                **mp_rule(cone, fn, self.nodes, self.processes))

    def probability(self, factor, cone, budget):
        return cone_expectation(factor, cone, [], None, **mp_rule(cone, None, self.nodes if self.nodes is not None else PP_NODES)).plain[0]

    def labels_given_h(self, model, factor, acc):
        return [label_given_h(model, factor, t, min_residual=None, rules=self) for t in range(model.n_tasks)], \
            [False] * model.n_tasks

    def h_integral(self, model, st, factor, acc, cone, rows, fn, lin=None, *, reduce=False, **double_rules):
        """Σ over the sign patterns ``signs`` of h of the product rule on cone ∩ orthant."""
        cones = [cone_stack(cone, (np.array([s_ * h for s_, h in zip(sg, model.rows_h())]).reshape(len(sg), model.n_fields),
                                   np.array(sg) < 0)) for sg in self.signs]
        rs = [cone_expectation(factor, c, rows, fn, lin, reduce=reduce, **mp_rule(c, fn, self.nodes, self.processes))
              for c in cones]
        return sum(r.plain for r in rs), None if lin is None else sum(r.linear for r in rs)

    def label_label(self, model, st, factor, acc, t, u, act, node_part=None):
        a, b = label_label_tasks(model.classes, t, u)
        out = label_label_joint(self.cov, factor, MP.to_mp(model.rows_h()), MP.to_mp(model.rows_nu(a)), MP.to_mp(model.rows_nu(b)),
                                st.V, act, a, b, self.nodes, self.split_smooth, self.processes)
        out = np.array(out.tolist(), dtype=object)
        return out if a == t else out.T

    # `metrics.task_metrics`
    def for_metrics(self, model, st, factor, acc, tasks, label):
        """These rules at ``st`` (`at`), the mp path's reach checked (`check_mp`)."""
        check_mp(model, st, factor, tasks, label)
        if not model.linear and not acc.cut_loss_nodes:
            raise RequestError("accuracy.cut_loss_nodes", "the mp test loss of nonlinear trunks is the cut rule's: "
                               "expected an integer >= 1, got 0")
        return self.at(model, st)

    def agreement(self, model, st, factor, t, fields):
        """A linear trunk's agreement by `independent_checks.agreement_by_route` (one (C_t − 1)-dim
        integral per class), None where it has none (then `metrics.linear_agreement`)."""
        return agreement_by_route(model, st, factor, t, fields, self.nodes, self.decide_at, self.processes)


def task_metrics_mp(model: TheoryModel, st: State, nodes=None, label: bool = True, loss: bool = True,
                    processes: int = 1, acc: Accuracy = MP_ACCURACY, tasks=None) -> list:
    """[(gen_error, label_error, test_loss)] per task (of ``tasks``): `metrics.task_metrics` with
    `MpRules(nodes, processes)` at ``acc``'s cut-rule node counts."""
    ms = task_metrics(model, mp_state(st), acc, label=label, loss=loss, tasks=tasks, rules=MpRules(nodes, processes))
    return [(m.gen_error, m.label_error, m.test_loss) for m in ms]
