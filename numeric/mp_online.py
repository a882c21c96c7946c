"""The online right-hand side at arbitrary precision (mpmath): the double path's term code run in mp.

`online._linear_part` (linear trunks, glm students) and `online._nonlinear_part` (`mp_nonlinear`)
are executed by `MpRules`: object arrays of mpf, `cone_expectation_mp`'s tanh–sinh / Gauss–Hermite
product rules at the working precision, `mp_pointwise`'s formulas.  The routes of a linear trunk
(argmax splits of widely spread logits, closed-form label terms, their steep splits) are the
double path's, decided in double at the state (`online.linear_routes`); where the double path
takes fixed Sobol' points the mp path integrates the pieces.  The terms come back under the
derivation's integral names; the closed forms and the assembly are the generated mp module's
(`engine.closed_terms_mp`, `engine.assemble_mp`).  Metrics: the errors of a linear trunk by the
independent route `independent_checks.agreement_by_route` (else the cones), the test loss as
`metrics._linear_loss`; nonlinear trunks: `mp_errors`.

Scope: C_t ≤ 3 (the pair term of two tasks with C = 3 on shared inputs is 4-dimensional);
nonlinear trunks K ≤ 3.  States are `MpState` (Q, R, V as mpmath matrices); `mp_state(state)`
converts a double State exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np

from .cone import MP
from .engine import assemble_mp, closed_terms_mp, flatten_terms, generated_module
from mtsp.errors import ReachError

from .independent_checks import agreement_by_route
from .model import State, TheoryModel, argmax_cone, cone_stack
from .online import _diff_rows, _lse_from_diffs
from .mp_pointwise import ACTIVATION_PAIRS, cone1_probability, cone1_stein, cone2_probability, cone2_stein
from .mp_quadrature import _obj, cone_expectation_mp, mp_factor, to_mp
from .quadrature import ConeResult

__all__ = ["MpState", "mp_state", "field_cov_mp", "linear_terms_mp", "integrals_mp", "rhs_state_mp",
           "task_metrics_mp", "pack_mp", "unpack_mp", "float_state"]


@dataclass
class MpState:
    Q: mpmath.matrix
    R: mpmath.matrix
    V: tuple


def _mat(a):
    a = np.asarray(a, dtype=float) if not isinstance(a, mpmath.matrix) else a
    if isinstance(a, mpmath.matrix):
        return a.copy()
    return mpmath.matrix(to_mp(a)) if a.size else mpmath.matrix(a.shape[0], a.shape[1] if a.ndim > 1 else 1)


def mp_state(st: State) -> MpState:
    return MpState(_mat(st.Q), _mat(st.R), tuple(_mat(v) for v in st.V))


def float_state(st: MpState) -> State:
    f = lambda m: np.array(m.tolist(), dtype=float)  # noqa: E731
    return State(f(st.Q), f(st.R), tuple(f(v) for v in st.V))


def _check(model: TheoryModel):
    if not model.linear:
        raise ReachError("precision", "the mp back-end covers linear trunks and glm students only "
                         f"(activation {model.activation!r})")
    if max(model.classes) > 3:
        raise ReachError("precision", "the mp back-end covers C_t ≤ 3 (integrals ≤ 4 dimensions)")


def field_cov_mp(model: TheoryModel, st: MpState) -> list:
    """The covariance of the fields (h, λ, ν) in mp (nested lists): `TheoryModel.field_cov`'s blocks."""
    Q, R, T = _obj(st.Q, model.K), _obj(st.R, model.M), _obj(model.gram, model.M)
    S = T + np.diag([mpmath.mpf(s) ** 2 for s in model.sigma_vec()])
    return np.block([[Q, R, R], [R.T, T, T], [R.T, T, S]]).tolist()


def _in_double(model: TheoryModel, st: MpState):
    """(state, field factor) in double: the double path's decisions (splits, label routes) are
    taken on these, so that both back-ends integrate the same pieces."""
    from .quadrature import gaussian_factor
    fs = float_state(st)
    return fs, gaussian_factor(model.field_cov(fs))


class MpRules:
    """The online term code (`online._linear_part`, `label_given_h`, …) executed in mpmath: object
    arrays of mpf (`cone.MP`), `cone_expectation_mp`'s tanh–sinh / Gauss–Hermite nodes at the
    working precision (``nodes`` per dimension, default `DEFAULT_NODES`; pure probabilities of
    teacher cones at PP_NODES), `mp_pointwise`'s formulas, no Sobol' tier (its pieces are
    integrated).  ``decide_at``: the (state, factor) in double at which the routes of a linear trunk
    are decided; nonlinear trunks: ``signs``, the sign patterns of h integrated separately
    (`mp_nonlinear._take_split`; [()]: one rule over all of h), labels in closed form given h
    everywhere, the label–label term by `independent_checks.label_label_joint` (needs the field
    covariance ``cov``, nested lists)."""
    ar = MP
    sobol = False
    pair_by_transpose = True    # P(y_s, y_t) = P(y_t, y_s)ᵀ (exact cone probabilities)
    exp, log = staticmethod(np.frompyfunc(mpmath.exp, 1, 1)), staticmethod(np.frompyfunc(mpmath.log, 1, 1))
    cone1, cone1_stein = staticmethod(np.frompyfunc(cone1_probability, 2, 1)), staticmethod(np.frompyfunc(cone1_stein, 2, 1))
    cone2, cone2_stein = staticmethod(np.frompyfunc(cone2_probability, 5, 1)), staticmethod(np.frompyfunc(cone2_stein, 5, 2))

    def __init__(self, nodes=None, processes: int = 1, decide_at=None, signs=((),), cov=None, split_smooth=None):
        self.nodes, self.processes, self.decide_at = nodes, processes, decide_at
        self.signs, self.cov, self.split_smooth = signs, cov, split_smooth
        self.key = (mpmath.mp.prec, repr(nodes))

    @staticmethod
    def rows(x):
        return x if x.dtype == object else _obj(x, x.shape[1])

    @staticmethod
    def scalar(x):
        return x

    def expect(self, factor, cone, proj, fn, lin=None, *, skip_last_cone: bool = False, **double_rules) -> ConeResult:
        r = cone_expectation_mp(factor, cone, proj, fn, lin, nodes=self.nodes, processes=self.processes,
                                skip_last_cone=skip_last_cone, batch=True)
        return ConeResult(np.array(r.plain, dtype=object),
                          None if r.linear is None else np.array(r.linear, dtype=object).reshape(len(r.linear), -1))

    def probability(self, factor, cone, budget):
        # computed once per teacher: more nodes than the default 3-dim rule (20 nodes: 4e-8 on a
        # two-task C = 3 teacher; 24: 1.9e-9 relative; 32: 4e-12 from the double path)
        return cone_expectation_mp(factor, cone, [], None, nodes=self.nodes if self.nodes is not None else PP_NODES).plain[0]

    @staticmethod
    def activation(name):
        return np.frompyfunc(ACTIVATION_PAIRS[name], 1, 2)

    def labels_given_h(self, model, factor, acc):
        from .online import label_given_h
        return [label_given_h(model, factor, t, min_residual=None, rules=self) for t in range(model.n_tasks)], \
            [False] * model.n_tasks

    def h_integral(self, model, st, factor, acc, cone, rows, fn, lin=None, *, reduce=False, **double_rules):
        """Σ over the sign patterns ``signs`` of h of the product rule on cone ∩ orthant."""
        plain = linear = None
        cone = cone if isinstance(cone, tuple) or cone is None else (cone, np.zeros(len(cone), bool))
        for sg in self.signs:
            orth = (np.array([s_ * h for s_, h in zip(sg, model.rows_h())]).reshape(len(sg), model.n_fields),
                    np.array([s_ < 0 for s_ in sg], bool))
            r = cone_expectation_mp(factor, orth if cone is None else cone_stack(cone, orth), rows, fn, lin,
                                    nodes=self.nodes, processes=self.processes, batch=True, reduce=reduce)
            plain = r.plain if plain is None else [x + y for x, y in zip(plain, r.plain)]
            if lin is not None:
                linear = r.linear if linear is None else [[x + y for x, y in zip(p, q)] for p, q in zip(linear, r.linear)]
        return np.array(plain, dtype=object), None if linear is None else np.array(linear, dtype=object)

    def label_label(self, model, st, factor, acc, t, u, act, node_part=None):
        from .independent_checks import _vec, label_label_joint
        a, b = (u, t) if model.classes[u] < model.classes[t] else (t, u)
        out = label_label_joint(self.cov, factor, _vec(model.rows_h()), _vec(model.rows_nu(a)), _vec(model.rows_nu(b)),
                                st.V, act, a, b, self.nodes, self.split_smooth, self.processes)
        out = np.array(out.tolist(), dtype=object)
        return out if a == t else out.T

    @staticmethod
    def pinv_gram(G):
        """The pseudo-inverse of a symmetric PSD matrix (eigenvalues below rank_tol × the largest dropped)."""
        vals, vecs = MP.eigh(G)
        top = max(max(vals), 0)
        inv = np.array([1 / v if v > MP.rank_tol() * top else mpmath.mpf(0) for v in vals], dtype=object)
        return MP.matmul(vecs * inv, vecs.T)


PP_NODES = {1: 64, 2: 40, 3: 24, 4: 12}


def _obj_state(st: MpState) -> State:
    """An mp state as object arrays of mpf (the arithmetic of `MpRules`)."""
    return State(_obj(st.Q, st.Q.cols), _obj(st.R, st.R.cols), tuple(_obj(v, v.cols) for v in st.V))


def _named(model: TheoryModel, raw: dict) -> dict:
    """`online`'s term dictionaries of object arrays → the derivation's integral names, as mpmath
    matrices (scalars as mpf)."""
    scalars = [k for k in ("Lse", "Eyz") if k in raw]
    flat = flatten_terms(model, {**raw, **{k: np.zeros(model.n_tasks) for k in scalars}})
    for k in scalars:
        flat.update({f"{k}{t}": raw[k][t] for t in range(model.n_tasks)})
    return {k: mpmath.matrix(v.tolist()) if isinstance(v, np.ndarray) else v for k, v in flat.items()}


def linear_terms_mp(model: TheoryModel, st: MpState, F, nodes=None, cov=None, processes: int = 1) -> dict:
    """`online.linear_terms` in mp — the double path's term code (`online._linear_part`) executed by
    `MpRules`, its routes decided in double at the state (`online.linear_routes`; where the double
    path takes fixed Sobol' points the mp path integrates the pieces) — as the derivation's named
    integrals (mpmath matrices): A{t}, Lse{t}, B{ts}, Y{ts}, P{t}, L{t}, PP{ts}.  Without the field
    covariance ``cov`` every label term integrates the label cones."""
    from . import online
    _check(model)
    rules = MpRules(nodes, processes, _in_double(model, st))
    acc = online.Accuracy(fast_labels=cov is not None)
    F = _obj(F, len(F[0])) if len(F) else MP.zeros((0, 0))
    return _named(model, online._finish_linear(model, online._linear_part(model, _obj_state(st), F, acc, None, rules)))





def _gen_mp(model: TheoryModel, generated):
    """The generated mp module of the model's structure from derive's modules ``generated``
    (`mtsp.derive.GENERATED`, or anything with ``mpmath(model, name)``; `engine.generated_module`)."""
    return generated_module(generated, model, "", "mpmath")


def integrals_mp(model: TheoryModel, st: MpState, nodes=None, closed: bool = True, processes: int = 1,
                 generated=None) -> dict:
    """All reduced integrals in mp: quadrature, then the derivation's closed forms where usable
    (`engine.closed_terms_mp`, as the NumPy module's `integrals` does; ``generated``: `_gen_mp`)."""
    C = field_cov_mp(model, st)
    F = mp_factor(C)
    if not model.linear:
        from .mp_nonlinear import nonlinear_terms_mp
        return nonlinear_terms_mp(model, st, F, C, nodes, processes=processes)
    flat = linear_terms_mp(model, st, F, nodes, C, processes)
    if closed:
        flat.update(closed_terms_mp(_gen_mp(model, generated), model, st))
    return flat


def rhs_state_mp(model: TheoryModel, st: MpState, nodes=None, terms: dict | None = None, processes: int = 1,
                 generated=None):
    """(dQ, dR, dV, losses) in mp from the generated mp assembly (`engine.assemble_mp`); also
    returns the integrals.  ``processes``: 1, or 2 to split the larger integrals with a forked
    process; ``generated``: derive's modules (`_gen_mp`)."""
    terms = integrals_mp(model, st, nodes, processes=processes, generated=generated) if terms is None else terms
    return (*assemble_mp(_gen_mp(model, generated), model, st, terms), terms)


def pack_mp(model: TheoryModel, Q, R, V) -> list:
    K = model.K
    y = [Q[i, j] for i in range(K) for j in range(i, K)]
    y += [R[i, j] for i in range(K) for j in range(model.M)]
    if model.train_heads:
        for v in V:
            y += [v[i, j] for i in range(v.rows) for j in range(v.cols)]
    return y


def unpack_mp(model: TheoryModel, y: list, V0=None) -> MpState:
    K, M = model.K, model.M
    Q = mpmath.matrix(K, K)
    pos = 0
    for i in range(K):
        for j in range(i, K):
            Q[i, j] = Q[j, i] = y[pos]
            pos += 1
    R = mpmath.matrix(K, M)
    for i in range(K):
        for j in range(M):
            R[i, j] = y[pos]
            pos += 1
    if model.train_heads:
        V = []
        for c in model.classes:
            v = mpmath.matrix(c, K)
            for i in range(c):
                for j in range(K):
                    v[i, j] = y[pos]
                    pos += 1
            V.append(v)
        V = tuple(V)
    else:
        V = tuple(_mat(v) for v in (V0 if V0 is not None else model.heads0))
    return MpState(Q, R, V)


def task_metrics_mp(model: TheoryModel, st: MpState, nodes=None, label: bool = True, loss: bool = True,
                    processes: int = 1):
    """[(gen_error, label_error, test_loss)] per task in mp (linear trunks: cone probabilities;
    nonlinear trunks with K ≤ 3: `mp_errors.nonlinear_metrics_mp`, the h-domain cut along the
    student's tie curves, at its own node counts, ERROR_NODES / ERROR_NODES3)."""
    if not model.linear:
        from .mp_errors import nonlinear_metrics_mp
        C = field_cov_mp(model, st)
        from .workers import map_two       # one task per process on two cores
        return map_two(lambda t: nonlinear_metrics_mp(model, st, C, t, label=label, loss=loss), range(model.n_tasks),
                       processes)
    _check(model)
    F = mp_factor(field_cov_mp(model, st))
    double, rules, so = _in_double(model, st), MpRules(nodes), _obj_state(st)
    one = lambda p: (MP.full((p.shape[0], 1), mpmath.mpf(1)),) * 2  # noqa: E731
    out = []
    for t in range(model.n_tasks):
        z = model.rows_logits(so, t)

        def agreement(fields):  # Σ_c P(argmax z = c, argmax x = c): by the independent route, else the cones
            rows = model.rows_lambda(t) if fields == "lambda" else model.rows_nu(t)
            p = agreement_by_route(model, st, F, t, fields, nodes, double, processes)
            return p if p is not None else mpmath.fsum(cone_expectation_mp(
                F, cone_stack(argmax_cone(z, c), argmax_cone(rows, c)), [], None, nodes=nodes).plain[0]
                for c in range(model.classes[t]))
        gen = agreement("lambda")
        lab = agreement("nu") if label else mpmath.mpf(0)
        tl = mpmath.nan
        if loss:   # E[lse z_t] − Σ_c E[1{y_t = c} z_tc] (z enters linearly), as `metrics._linear_loss`
            lse = rules.expect(F, None, _diff_rows(z), lambda u: (_lse_from_diffs(u, rules)[:, None], None)).plain[0]
            tl = lse - mpmath.fsum(rules.expect(F, argmax_cone(model.rows_nu(t), c), np.zeros((0, model.n_fields)),
                                                one, z[c:c + 1]).linear[0, 0] for c in range(model.classes[t]))
        out.append((1 - gen, (1 - lab) if label else mpmath.nan, tl))
    return out
