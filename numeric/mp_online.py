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

import itertools
from dataclasses import dataclass

import mpmath
import numpy as np

from .engine import assemble_mp, closed_terms_mp
from mtsp.errors import ReachError

from .model import State, TheoryModel
from .mp_quadrature import cone_expectation_mp, mp_factor, to_mp

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


def _route(model: TheoryModel, double, t: int, s: int, fields: str):
    """(steep, rows) when P(x_t | u_s) — x = ν_t ("nu") or λ_t ("lambda") given the logit
    differences u_s — is a usable closed form, judged in double as the double path does; None for
    identically zero logits (σ₀ = 0 at t = 0) or labels decided by the logits."""
    from . import online
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


def _independent_rows(Fu: np.ndarray, tol: float = 1e-9) -> list:
    """Indices of a maximal set of linearly independent rows (in order): the logit differences
    of a trunk narrower than C − 1 are dependent, and conditioning on them needs a basis."""
    ind, basis = [], []
    scale = max(float(np.abs(Fu).max(initial=0.0)), 1e-300)
    for i, row in enumerate(Fu):
        r = row.copy()
        for b in basis:
            r -= (r @ b) * b
        n = np.linalg.norm(r)
        if n > tol * scale:
            ind.append(i)
            basis.append(r / n)
    return ind


def _label_softmax_mp(model, st, F, C, route, u_rows, ind, nodes, pieces, processes=1):
    """E[1{y_t = c} softmax(u_s)_d] (C_t × C_s) in mp by the double path's reduction: one integral
    over u_s of P(y_t = c | u_s) — the cone (ν_tc − ν_tj)_{j≠c} > 0 given u_s, Φ or Φ₂ in mp —
    times the softmax, over the pieces of the widely spread logits and, where P is steep, the
    argmax cones of E[ν_t | u_s]."""
    from mtsp.derive.codegen import load_mp_module
    from .mp_nonlinear import _cone_given, _labels_given
    t, s = route.t, route.s
    Ct, Cs = model.classes[t], model.classes[s]
    nu = _np_rows(model.rows_nu(t))
    cond = [u_rows[i] for i in ind]               # independent differences: the same conditional
    lab = _labels_given(F, nu, None, cond)

    integrand = load_mp_module(model).LINEAR_INTEGRANDS_MP[f"labelsoft{t}{s}"]

    def fn(u):
        x = [u[i] for i in ind]
        p = []
        for c, (A, S, _) in enumerate(lab):
            p.append(1 - mpmath.fsum(p) if c == Ct - 1 else _cone_given(A, S, x, False)[0])
        return integrand(u, p)[0], None
    if route.mean_split:
        pieces = [m if p is None else _stack(p, m) for p in pieces for m in _mean_cones(F, nu, cond)]
    plain, _ = _pieces_expectation(F, None, u_rows, fn, None, nodes, pieces, processes)
    return mpmath.matrix([[plain[c * Cs + d] for d in range(Cs)] for c in range(Ct)])


def linear_terms_mp(model: TheoryModel, st: MpState, F, nodes=None, cov=None, processes: int = 1) -> dict:
    """`online.linear_terms` in mp, as the derivation's named integrals (mpmath matrices):
    A{t}, Lse{t}, B{ts}, Y{ts}, P{t}, L{t}, PP{ts}.  The routes are the double path's
    (`online.linear_routes` at the state in double: which integrals split into the argmax cones of
    widely spread logits, which label terms take P(y_t | u_s) in closed form — mp Φ / Φ₂ — and
    which of those split by the argmax cones of E[ν_t | u_s]); where the double path takes fixed
    Sobol' points the mp path integrates the pieces.  Without the field covariance ``cov`` (mp)
    every label term integrates the label cones.  P_t and L_t are cone integrals of the label
    fields (with Y_tt where the label cones are integrated): independent of the double path's
    teacher moments."""
    from . import online
    _check(model)
    T, K, M = model.n_tasks, model.K, model.M
    ell = _np_rows(np.vstack([model.rows_h(), model.rows_lambda()]))
    diffs = [_diffs(_logit_rows(model, st, t)) for t in range(T)]
    fs, factor = _in_double(model, st)
    routes, _ = online.linear_routes(model, fs, factor, online.Accuracy(fast_labels=cov is not None))

    def pieces(route):
        cones = [[_mp_cone(_logit_rows(model, st, t), c) for c in range(model.classes[t])] for t in route.wide]
        return [_stack(*combo) for combo in itertools.product(*cones)] if cones else [None]
    from mtsp.derive.codegen import load_mp_module
    integrand = load_mp_module(model).LINEAR_INTEGRANDS_MP   # the derivation's integrands, printed for mp

    def over_u(name):
        f = integrand[name]
        return lambda u: f(u, None)
    out = {}
    pairs = _pairs(model)
    P = [mpmath.matrix(C, 1) for C in model.classes]
    L = [mpmath.matrix(C, K + M) for C in model.classes]
    Y = {(t, s): mpmath.matrix(model.classes[t], model.classes[s]) for t, s in pairs}
    for r in routes:
        t, s = r.t, r.s
        Ct, Cs = model.classes[t], model.classes[s]
        if r.kind == "self":
            plain, linear = _pieces_expectation(F, None, diffs[t], over_u(f"self{t}"), ell, nodes, pieces(r),
                                                processes)
            out[f"B{t}{t}"] = mpmath.matrix([[plain[i * Ct + j] for j in range(Ct)] for i in range(Ct)])
            out[f"Lse{t}"] = plain[-1]
            out[f"A{t}"] = mpmath.matrix(linear)
        elif r.kind == "pair":
            plain, _ = _pieces_expectation(F, None, diffs[t] + diffs[s], over_u(f"pair{t}{s}"), None, nodes,
                                           pieces(r), processes)
            out[f"B{t}{s}"] = mpmath.matrix([[plain[i * Cs + j] for j in range(Cs)] for i in range(Ct)])
        elif r.kind == "labelsoft" and _independent_rows(online._diff_rows(model.rows_logits(fs, s)) @ factor):
            ind = _independent_rows(online._diff_rows(model.rows_logits(fs, s)) @ factor)
            Y[t, s] = _label_softmax_mp(model, st, F, cov, r, diffs[s], ind, nodes, pieces(r), processes)
            if s == t:  # P and L alone: a cone integral of the label fields
                for c in range(Ct):
                    res = cone_expectation_mp(F, _cone(model.rows_nu(t), c), [],
                                              lambda u: ([mpmath.mpf(1)], [mpmath.mpf(1)]), ell, nodes=nodes)
                    P[t][c, 0] = res.plain[0]
                    for j in range(K + M):
                        L[t][c, j] = res.linear[0][j]
        else:  # the label cones (class r.c; all of them where identically zero logits leave no condition)
            for c in ([r.c] if r.kind == "cone" else range(Ct)):
                cone = _cone(model.rows_nu(t), c)
                name = f"cone{t}{t}" if s == t else f"conesoft{s}"
                plain, linear = _pieces_expectation(F, cone, diffs[s], over_u(name), ell if s == t else None,
                                                    nodes, pieces(r), processes)
                for j in range(Cs):
                    Y[t, s][c, j] = plain[j]
                if s == t:
                    P[t][c, 0] = plain[Cs]
                    for j in range(K + M):
                        L[t][c, j] = linear[0][j]
    for t in range(T):
        out[f"P{t}"], out[f"L{t}"] = P[t], L[t]
    for t, s in pairs:
        out[f"Y{t}{s}"] = Y[t, s]
    for t, s in pairs:
        if t < s:
            # teacher-only and constant in time: cached by teacher, tasks, precision and nodes
            key = (model.gram.tobytes(), model.noise.tobytes(), t, s, mpmath.mp.prec, repr(nodes))
            if key not in _PP_CACHE:
                Ct, Cs = model.classes[t], model.classes[s]
                PP = mpmath.matrix(Ct, Cs)
                # computed once: more nodes than the default 3-dim rule (20 nodes: 4e-8 on a
                # two-task C = 3 teacher; 24: 1.9e-9 relative; 32: 4e-12 from the double path)
                pp_nodes = nodes if nodes is not None else {1: 64, 2: 40, 3: 24, 4: 12}
                for c in range(Ct):
                    for d in range(Cs):
                        rows = _stack(_cone(model.rows_nu(t), c), _cone(model.rows_nu(s), d))
                        PP[c, d] = cone_expectation_mp(F, rows, [], None, nodes=pp_nodes).plain[0]
                _PP_CACHE[key] = PP
            out[f"PP{t}{s}"] = _PP_CACHE[key].copy()
    return out


_PP_CACHE: dict = {}


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
        from .workers import map_two       # one task per process on two cores
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
