"""The online theory at arbitrary precision: the double path's code in the `cone.MP` number type.

States are `State`s of object arrays of mpf (`mp_state`); `engine.GeneratedSystem` runs the
generated mp module's closed forms and assembly on them as on floats, with `MpRules` executing
`online`'s term code: `cone_expectation_mp`'s product rules at the working precision (no Sobol'
tier: its pieces are integrated), `mp_pointwise`'s formulas; a linear trunk's routes decided in
double at the state (`online.linear_routes`); over the fields h of a nonlinear trunk the sign
patterns `sign_patterns` picks (relu: the 2^K orthants at its kink; tanh, erf: one
Gauss–Hermite rule over all of h until its model error `one_rule_error` exceeds SPLIT_TOL, measurements in
docs/PRECISION.md), the label–label term by `independent_checks.label_label_joint`.
Errors: a linear trunk's by `independent_checks.agreement_by_route` (else the cones), nonlinear
trunks' by `mp_errors`.  Scope: C_t ≤ 3; nonlinear trunks K ≤ 3.
"""
from __future__ import annotations

import mpmath
import numpy as np

from mtsp.errors import ReachError, RequestError
from mtsp.model import State, TheoryModel, cone_stack, label_label_tasks

from .cone import MP, gaussian_factor, truncated_normal
from .independent_checks import agreement_by_route, label_label_joint
from .mp_pointwise import ACTIVATION_PAIRS, cone1_probability, cone1_stein, cone2_probability, cone2_stein
from .mp_quadrature import DEFAULT_NODES, gauss_hermite_mp, mp_rule, tanh_sinh01_mp, to_mp
from .mp_quadrature import to_mp as _vec
from .metrics import linear_agreement, linear_loss
from .online import Accuracy, _finish_linear, _linear_part, _nonlinear_part, _orthant_signs, label_given_h
from .quadrature import ConeResult, cone_expectation, gaussian_factor as double_factor

__all__ = ["MpRules", "mp_state", "as_mp", "check_mp", "task_metrics_mp", "sign_patterns", "one_rule_error", "SPLIT_TOL"]

SPLIT_TOL = 1e-8   # the one-rule route's largest model error (`one_rule_error`) before the split is taken
PP_NODES = {1: 64, 2: 40, 3: 24, 4: 12}   # teacher-only cone probabilities (24 at 3 dims: 1.9e-9; 32: 4e-12)


def as_mp(a):
    """Numbers (arrays, mpmath matrices, lists) as object arrays of mpf; floats convert exactly."""
    out = np.array(to_mp(a), dtype=object)
    return out.reshape(a.shape) if isinstance(a, np.ndarray) else out


def mp_state(st: State) -> State:
    return st.map(as_mp)


def check_mp(model: TheoryModel) -> None:
    if max(model.classes) > 3:
        raise ReachError("precision", f"the mp back-end covers C_t ≤ 3 (got classes {list(model.classes)})")
    if not model.linear and model.K > 3:
        raise ReachError("precision", f"the mp back-end of nonlinear trunks covers K ≤ 3 (got K = {model.K})")


def one_rule_error(act: str, spread, n: int):
    """Relative error of the n-point Gauss–Hermite rule over all of h on the model integral
    E[g′(s z)²], z ~ N(0, 1), s = ``spread`` (g′² is the sharpest factor of the integrands; its
    scale in h is 1 whatever Q is), against the sign-orthant split at 2n nodes (Genz coordinates,
    tanh–sinh)."""
    f = lambda x: ACTIVATION_PAIRS[act](spread * x)[1] ** 2   # noqa: E731
    x, w = gauss_hermite_mp(n)
    one = mpmath.fsum(wi * f(xi) for xi, wi in zip(x, w))
    u, uc, wt = tanh_sinh01_mp(2 * n)
    split = mpmath.mpf(0)
    for lo, hi in ((mpmath.mpf(0), mpmath.inf), (-mpmath.inf, mpmath.mpf(0))):
        y, m = truncated_normal(MP, MP.full(len(u), lo), MP.full(len(u), hi), u, uc)
        split += mpmath.fsum(wk * mk * f(yk) for yk, mk, wk in zip(y, m, wt))
    return abs(one / split - 1)


def sign_patterns(act: str, C, rows, nodes, split_smooth: bool | None = None) -> list:
    """The sign patterns of the trunk fields ``rows`` (lists of mpf on the fields of covariance ``C``)
    to integrate over separately: all of them (`online._orthant_signs`) for relu, with
    ``split_smooth``, or by default where the one-rule route's model error at the fields' largest
    spread exceeds SPLIT_TOL (at the nodes `cone_expectation_mp` takes for len(rows) dimensions);
    else [()], one rule over all of h."""
    n = len(rows)
    if act != "relu" and split_smooth is None:
        dims = DEFAULT_NODES[n] if nodes is None else nodes.get(n, DEFAULT_NODES[n]) if isinstance(nodes, dict) else int(nodes)
        var = max(mpmath.fsum(r[i] * C[i][j] * r[j] for i in range(len(C)) for j in range(len(C))) for r in rows)
        split_smooth = one_rule_error(act, mpmath.sqrt(var), dims) > SPLIT_TOL
    return _orthant_signs(n) if act == "relu" or split_smooth else [()]


class MpRules:
    """`online.DoubleRules`' interface in mpmath (``nodes`` per integrated dimension, `cone_expectation_mp`'s
    default by dimension; ``processes``: 1, 2 or a `workers` executor; ``split_smooth``: tanh / erf
    trunks over h's sign orthants too, or not; None: `sign_patterns` decides)."""
    ar, sobol, pair_by_transpose = MP, False, True   # P(y_s, y_t) = P(y_t, y_s)ᵀ (exact cone probabilities)
    lift, scalar, factor = staticmethod(as_mp), staticmethod(mpmath.mpf), staticmethod(lambda C: gaussian_factor(MP, C))
    exp, log = MP.exp, MP.log
    cone1, cone1_stein = staticmethod(np.frompyfunc(cone1_probability, 2, 1)), staticmethod(np.frompyfunc(cone1_stein, 2, 1))
    cone2, cone2_stein = staticmethod(np.frompyfunc(cone2_probability, 5, 1)), staticmethod(np.frompyfunc(cone2_stein, 5, 2))
    rows, decide_at = staticmethod(lambda x: x if x.dtype == object else as_mp(x)), None

    def __init__(self, nodes=None, processes=1, split_smooth: bool | None = None, signs=((),), cov=None):
        if split_smooth is not None and not isinstance(split_smooth, bool):
            raise RequestError("split_smooth", f"expected None, True or False, got {split_smooth!r}")
        self.nodes, self.processes, self.split_smooth, self.signs, self.cov = nodes, processes, split_smooth, signs, cov
        self.key = (mpmath.mp.prec, repr(nodes))

    def terms(self, model, st, factor, acc, helper=None) -> dict:
        """`online`'s integrals at ``st`` in one part (``processes`` splits the larger integrals)."""
        check_mp(model)
        rules = MpRules(self.nodes, self.processes, self.split_smooth)
        if model.linear:
            fs = st.map(lambda a: np.asarray(a, dtype=float))
            rules.decide_at = fs, double_factor(model.field_cov(fs))
            return _finish_linear(model, _linear_part(model, st, factor, acc, None, rules))
        rules.cov = model.field_cov(st, as_mp)
        rules.signs = sign_patterns(model.activation, rules.cov, _vec(model.rows_h()), self.nodes, self.split_smooth)
        return _nonlinear_part(model, st, factor, acc, None, rules)

    def expect(self, factor, cone, proj, fn, lin=None, *, skip_last_cone: bool = False, **double_rules) -> ConeResult:
        return cone_expectation(factor, cone, proj, fn, lin, skip_last_cone=skip_last_cone,
                                **mp_rule(cone, fn, self.nodes, self.processes))

    def probability(self, factor, cone, budget):
        return cone_expectation(factor, cone, [], None, **mp_rule(cone, None, self.nodes if self.nodes is not None else PP_NODES)).plain[0]

    @staticmethod
    def activation(name):
        return np.frompyfunc(ACTIVATION_PAIRS[name], 1, 2)

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
        out = label_label_joint(self.cov, factor, _vec(model.rows_h()), _vec(model.rows_nu(a)), _vec(model.rows_nu(b)),
                                st.V, act, a, b, self.nodes, self.split_smooth, self.processes)
        out = np.array(out.tolist(), dtype=object)
        return out if a == t else out.T

    @staticmethod
    def pinv_gram(G):
        """The pseudo-inverse of a symmetric PSD matrix (eigenvalues below rank_tol × the largest dropped)."""
        return MP.pinv_psd(G, MP.rank_tol())


def task_metrics_mp(model: TheoryModel, st: State, nodes=None, label: bool = True, loss: bool = True,
                    processes: int = 1):
    """[(gen_error, label_error, test_loss)] per task in mp (linear trunks: cone probabilities;
    nonlinear trunks with K ≤ 3: `mp_errors.nonlinear_metrics_mp`, the h-domain cut along the
    student's tie curves, at its own node counts, ERROR_NODES / ERROR_NODES3)."""
    st = mp_state(st)
    C = model.field_cov(st, as_mp)
    if not model.linear:
        from .mp_errors import nonlinear_metrics_mp
        from .workers import map_two       # one task per process on two cores
        sv = State(st.Q, st.R, tuple(mpmath.matrix(v.tolist()) for v in st.V))   # mp_errors reads V_t.rows
        return map_two(lambda t: nonlinear_metrics_mp(model, sv, C, t, label=label, loss=loss), range(model.n_tasks),
                       processes)
    check_mp(model)
    F, rules = MpRules.factor(C), MpRules(nodes)
    fs = st.map(lambda a: np.asarray(a, dtype=float))
    rules.decide_at = fs, double_factor(model.field_cov(fs))
    acc = Accuracy()   # its budgets are the double's; MpRules integrates at ``nodes``
    out = []
    for t in range(model.n_tasks):
        def agreement(fields):  # Σ_c P(argmax z = c, argmax x = c): by the independent route, else the cones
            p = agreement_by_route(model, st, F, t, fields, nodes, rules.decide_at, processes)
            rows = model.rows_lambda(t) if fields == "lambda" else model.rows_nu(t)
            return p if p is not None else linear_agreement(model, st, F, t, rows, acc, rules)
        gen = agreement("lambda")
        lab = agreement("nu") if label else mpmath.mpf(0)
        tl = linear_loss(model, st, F, t, acc, rules) if loss else mpmath.nan
        out.append((1 - gen, (1 - lab) if label else mpmath.nan, tl))
    return out
