"""The online right-hand side at arbitrary precision (mpmath) — linear trunks and glm students.

The same reduced integrals as `online.linear_terms` (softmax terms over the logit differences,
split into argmax cones where the logits spread widely; label terms by P(y_t | logit differences)
in closed form — mp Φ / Φ₂ — split where steep; pair probabilities, cached), each evaluated by
`mp_quadrature.cone_expectation_mp` with the derivation's integrands (`derive.integrands`,
printed for mpmath: `LINEAR_INTEGRANDS_MP` of the structure's mp module); the
label terms P_t, L_t where the derivation closed them come from `_closed_arrays_mp`, and the
equations are assembled by `_assemble_mp` — both printed by SymPy's MpmathPrinter from the same
symbolic system as the NumPy module (`derive.codegen.load_mp_module`).  Metrics (gen_error,
label_error: cone probabilities; test_loss) are evaluated in mp as well.

Scope: linear trunks / glm, C_t ≤ 3, any number of tasks in principle (the pair term of two
tasks with C = 3 on shared inputs is 4-dimensional: an mp right-hand side takes ≈ 11 s there),
shared or separate inputs.
Nonlinear trunks: `mp_nonlinear` (right-hand side: C_t ≤ 3, K ≤ 3) and `mp_errors` (errors: K ≤ 3).

States are `MpState` (Q, R, V as mpmath matrices); `mp_state(state)` converts a double State
exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np

from .cone import MP
from .engine import assemble_mp, closed_terms_mp, flatten_terms
from mtsp.errors import ReachError

from .model import State, TheoryModel
from .mp_pointwise import cone1_probability, cone1_stein, cone2_probability, cone2_stein
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
    K, M = model.K, model.M
    n = K + 2 * M
    T = to_mp(model.gram)
    sig = [mpmath.mpf(s) ** 2 for s in model.sigma_vec()]
    C = [[mpmath.mpf(0)] * n for _ in range(n)]
    for i in range(K):
        for j in range(K):
            C[i][j] = st.Q[i, j]
        for j in range(M):
            C[i][K + j] = C[i][K + M + j] = st.R[i, j]
            C[K + j][i] = C[K + M + j][i] = st.R[i, j]
    for i in range(M):
        for j in range(M):
            C[K + i][K + j] = C[K + i][K + M + j] = C[K + M + i][K + j] = T[i][j]
            C[K + M + i][K + M + j] = T[i][j] + (sig[i] if i == j else 0)
    return C


def _logit_rows(model: TheoryModel, st: MpState, t: int) -> list:
    """z_t = V_t h as rows on the fields (mp)."""
    V = st.V[t]
    z = mpmath.mpf(0)
    return [[V[c, k] if k < model.K else z for k in range(model.n_fields)] for c in range(V.rows)]


def _diffs(rows):
    return [[a - b for a, b in zip(r, rows[0])] for r in rows[1:]]


def argmax_cone(values_rows, c: int):
    """{argmax = c} as (rows, nonstrict): v_c − v_j > 0 (j < c), ≥ 0 (j > c) — ties to the first
    index, the convention of numeric.model (kept local so both of its signatures work here)."""
    v = np.asarray(values_rows, dtype=float)
    rows = np.array([v[c] - v[j] for j in range(v.shape[0]) if j != c])
    return rows, [j > c for j in range(v.shape[0]) if j != c]


def _cone(values_rows, c: int):
    rows, ns = argmax_cone(values_rows, c)
    return (_np_rows(rows), ns)


def _mp_cone(rows, c: int):
    """argmax cone of mp rows (lists): (rows, nonstrict)."""
    return ([[a - b for a, b in zip(rows[c], rows[j])] for j in range(len(rows)) if j != c],
            [j > c for j in range(len(rows)) if j != c])


def _stack(*cones):
    return (sum((c[0] for c in cones), []), sum((list(c[1]) for c in cones), []))


def _np_rows(a):
    return [list(r) for r in to_mp(a)]


def _pairs(model):
    T = model.n_tasks
    if model.inputs == "shared":
        return [(t, s) for t in range(T) for s in range(T)]
    return [(t, t) for t in range(T)]


def _in_double(model: TheoryModel, st: MpState):
    """(state, field factor) in double: the double path's decisions (splits, label routes) are
    taken on these, so that both back-ends integrate the same pieces."""
    from .quadrature import gaussian_factor
    fs = float_state(st)
    return fs, gaussian_factor(model.field_cov(fs))


def _route(model: TheoryModel, double, t: int, s: int, fields: str):
    """(steep, rows) when P(x_t | u_s) — x = ν_t ("nu") or λ_t ("lambda") given the logit
    differences u_s — is a usable closed form, judged in double as the double path does; None for
    identically zero logits (σ₀ = 0 at t = 0) or labels decided by the logits."""
    from . import online
    from .online import _independent_rows
    fs, factor = double
    u = online._diff_rows(model.rows_logits(fs, s))
    ind = _independent_rows(u @ factor)
    if not ind:
        return None
    if online.label_given_h(model, factor, t, fields, stein=False, cond=u,
                            min_residual=online.LABEL_MIN_RESIDUAL_SPLIT) is None:
        return None
    return online.label_given_h(model, factor, t, fields, stein=False, cond=u) is None, ind


def _mean_cones(F, rows, cond) -> list:
    """The argmax cones of E[x | cond] = A·cond (x = `rows` on the fields, mp), as cones on the
    fields: where P(argmax x | cond) is steep, its steep layers lie on their faces."""
    from .mp_nonlinear import _Conditional
    A = _Conditional(F, rows, cond).A
    mean_rows = [[mpmath.fsum(A[c, j] * cond[j][k] for j in range(len(cond)))
                  for k in range(len(cond[0]))] for c in range(len(rows))]
    return [_mp_cone(mean_rows, c) for c in range(len(rows))]


class MpRules:
    """The online term code (`online._linear_part`, `label_given_h`, …) executed in mpmath: object
    arrays of mpf (`cone.MP`), `cone_expectation_mp`'s tanh–sinh / Gauss–Hermite nodes at the
    working precision (``nodes`` per dimension, default `DEFAULT_NODES`; pure probabilities of
    teacher cones at PP_NODES), `mp_pointwise`'s formulas, no Sobol' tier (its pieces are
    integrated).  ``decide_at``: the (state, factor) in double at which the routes are decided."""
    ar = MP
    sobol = False
    pair_by_transpose = True    # P(y_s, y_t) = P(y_t, y_s)ᵀ (exact cone probabilities)
    exp, log = staticmethod(np.frompyfunc(mpmath.exp, 1, 1)), staticmethod(np.frompyfunc(mpmath.log, 1, 1))
    cone1, cone1_stein = staticmethod(np.frompyfunc(cone1_probability, 2, 1)), staticmethod(np.frompyfunc(cone1_stein, 2, 1))
    cone2, cone2_stein = staticmethod(np.frompyfunc(cone2_probability, 5, 1)), staticmethod(np.frompyfunc(cone2_stein, 5, 2))

    def __init__(self, nodes=None, processes: int = 1, decide_at=None):
        self.nodes, self.processes, self.decide_at = nodes, processes, decide_at
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





def integrals_mp(model: TheoryModel, st: MpState, nodes=None, closed: bool = True, processes: int = 1) -> dict:
    """All reduced integrals in mp: quadrature, then the derivation's closed forms where usable
    (`engine.closed_terms_mp`, as the NumPy module's `integrals` does)."""
    from mtsp.derive.codegen import load_mp_module
    C = field_cov_mp(model, st)
    F = mp_factor(C)
    if not model.linear:
        from .mp_nonlinear import nonlinear_terms_mp
        return nonlinear_terms_mp(model, st, F, C, nodes, processes=processes)
    flat = linear_terms_mp(model, st, F, nodes, C, processes)
    if closed:
        flat.update(closed_terms_mp(load_mp_module(model), model, st))
    return flat


def rhs_state_mp(model: TheoryModel, st: MpState, nodes=None, terms: dict | None = None, processes: int = 1):
    """(dQ, dR, dV, losses) in mp from the generated mp assembly (`engine.assemble_mp`); also
    returns the integrals.  ``processes``: 1, or 2 to split the larger integrals with a forked process."""
    from mtsp.derive.codegen import load_mp_module
    terms = integrals_mp(model, st, nodes, processes=processes) if terms is None else terms
    return (*assemble_mp(load_mp_module(model), model, st, terms), terms)


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


def _pieces_expectation(F, cone, proj, fn, lin, nodes, pieces, processes=1):
    """Σ over `pieces` (argmax cones of widely spread logits, or [None]) of cone_expectation_mp
    on cone ∩ piece: the exact partition of the double path (`online._softmax_expectation`), so
    that a steep softmax sits on the pieces' faces rather than inside a smooth rule."""
    plain = linear = None
    for piece in pieces:
        c = piece if cone is None else (cone if piece is None else _stack(cone, piece))
        r = cone_expectation_mp(F, c, proj, fn, lin, nodes=nodes, processes=processes)
        plain = r.plain if plain is None else [a + b for a, b in zip(plain, r.plain)]
        if lin is not None:
            linear = r.linear if linear is None else \
                [[a + b for a, b in zip(x, y)] for x, y in zip(linear, r.linear)]
    return plain, linear


def _agreement_by_route(model: TheoryModel, st: MpState, F, C, t: int, fields: str, nodes, double,
                        processes: int = 1):
    """Σ_c P(argmax z_t = c, argmax x_t = c) for x = λ (fields "lambda") or ν ("nu") of a linear
    trunk, as one (C_t − 1)-dim integral per class instead of a 2(C_t − 1)-dim cone: over the
    logit differences u (an independent subset when the trunk is narrower), inside the student's
    cone of c, of P(argmax x_t = c | u) in closed form (Φ or Φ₂ in mp); where that probability is
    steep the cone is split by the argmax cones of E[x_t | u] (in 2 dimensions every such
    intersection is again a sector).  None where the conditional is degenerate (C_t > 3, zero
    logits, labels decided by the logits): then the cones.  Measured on a two-task C = 3, K = 2
    trunk: the 4-dim cones at 16 / 24 / 32 mp nodes err by 1.2e-4 / 1.4e-7 / 1.4e-8."""
    from .mp_nonlinear import _cone_given, _labels_given
    route = None if model.classes[t] > 3 else _route(model, double, t, t, fields)
    if route is None:
        return None
    steep, ind = route
    z = _logit_rows(model, st, t)
    u_rows = _diffs(z)
    cond = [u_rows[i] for i in ind]
    rows = _np_rows(model.rows_lambda(t) if fields == "lambda" else model.rows_nu(t))
    lab = _labels_given(F, rows, None, cond)
    pieces = _mean_cones(F, rows, cond) if steep else [None]
    total = mpmath.mpf(0)
    for c in range(model.classes[t]):
        A_c, S_c, _ = lab[c]

        def fn(p, A_c=A_c, S_c=S_c):
            return [_cone_given(A_c, S_c, [p[i] for i in ind], False)[0]], None
        total += _pieces_expectation(F, _mp_cone(z, c), u_rows, fn, None, nodes, pieces, processes)[0][0]
    return total


def task_metrics_mp(model: TheoryModel, st: MpState, nodes=None, label: bool = True, loss: bool = True,
                    processes: int = 1):
    """[(gen_error, label_error, test_loss)] per task in mp (linear trunks: cone probabilities;
    nonlinear trunks with K ≤ 3: `mp_errors.nonlinear_metrics_mp`, the h-domain cut along the
    student's tie curves, at its own node counts, ERROR_NODES / ERROR_NODES3)."""
    if not model.linear:
        from .mp_errors import nonlinear_metrics_mp
        C = field_cov_mp(model, st)
        from .mp_quadrature import map_two       # one task per process on two cores
        return map_two(lambda t: nonlinear_metrics_mp(model, st, C, t, label=label, loss=loss), range(model.n_tasks),
                       processes)
    _check(model)
    Cm = field_cov_mp(model, st)
    F = mp_factor(Cm)
    double = _in_double(model, st)
    out = []
    ell_one = lambda p: ([mpmath.mpf(1)], [mpmath.mpf(1)])  # noqa: E731
    for t in range(model.n_tasks):
        z = _logit_rows(model, st, t)
        lam = _np_rows(model.rows_lambda(t))
        nu = _np_rows(model.rows_nu(t))

        def agreement(rows, fields):  # Σ_c P(argmax z = c, argmax x = c): by the route, else cones
            p = _agreement_by_route(model, st, F, Cm, t, fields, nodes, double, processes)
            return p if p is not None else mpmath.fsum(
                cone_expectation_mp(F, _stack(_mp_cone(z, c), _mp_cone(rows, c)), [], None, nodes=nodes).plain[0]
                for c in range(model.classes[t]))
        gen = agreement(lam, "lambda")
        lab = agreement(nu, "nu") if label else mpmath.mpf(0)
        tl = mpmath.nan
        if loss:
            from mtsp.derive.codegen import load_mp_module
            self_t = load_mp_module(model).LINEAR_INTEGRANDS_MP[f"self{t}"]   # (…, Lse_t | A_t)
            lse = cone_expectation_mp(F, None, _diffs(z), lambda u: ([self_t(u, None)[0][-1]], None),
                                      nodes=nodes).plain[0]
            ez = mpmath.mpf(0)
            for c in range(model.classes[t]):
                ez += cone_expectation_mp(F, _mp_cone(nu, c), [], ell_one, [z[c]], nodes=nodes).linear[0][0]
            tl = lse - ez
        out.append((1 - gen, (1 - lab) if label else mpmath.nan, tl))
    return out
