"""Right-hand side of the N → ∞ online-SGD equations (MODEL.md, "The online theory").

With per-sample trunk gradient δ = g′(h) ⊙ Σ_t w_t V_tᵀ (softmax(z_t) − e_{y_t}), split by task as
δ = Σ_t w_t (a_t − b_{t,y_t}) with a_t = g′(h) ⊙ V_tᵀ s_t(z_t) and b_{t,c} = g′(h) ⊙ V_t[c]:

    dR/dt   = −η Σ_t c_t E[(a_t − b_{t,y_t}) λᵀ] − ηκ R
    dQ/dt   = −η Σ_t c_t (E[(a_t − b_{t,y_t}) hᵀ] + transpose) + η² D − 2ηκ Q
    dV_t/dt = −η_V c_t E[(s_t − e_{y_t}) g(h)ᵀ]

with c_t = w_t (shared inputs) or π_t w_t (separate inputs: a sample carries one task), and the
SGD-noise term D = Σ_{t,s} w_t w_s E[(a_t − b_{t,y_t})(a_s − b_{s,y_s})ᵀ] (shared inputs) or
Σ_t π_t w_t² E[(a_t − b_{t,y_t})(a_t − b_{t,y_t})ᵀ] (separate inputs).

Each expectation is reduced before it is integrated (see `quadrature`):
  * labels are cones {ν_{t,c} − ν_{t,j} > 0}; a term with 1{y_t = c} is one cone integral;
  * fields entering linearly (λ, and h where g is linear) are replaced by conditional means;
  * linear trunks (and glm students): the softmax depends on h only through the C_t − 1
    logit differences of task t, so each term integrates over those alone, task by task; the
    label terms take P(y_t | those differences) in closed form (C_t ≤ 3: `_label_softmax`);
    P(y_t = c), E[1{y_t = c} ℓ] and the label–label probabilities of two tasks come from
    teacher-only moments, constant in time (cached); widely spread logits and steep conditional
    label probabilities are split into argmax cones (`_softmax_expectation`);
  * nonlinear trunks: the labels are closed forms given h (C ≤ 3: `label_given_h`), so every
    term is one integral over h ∈ R^K, reduced at the nodes by matrix products; h is split into
    its 2^K sign orthants (K ≤ 2; relu up to K = 4), inside which relu is linear and where the
    scale-1 transition of erf/tanh meets clustered nodes, or integrated by a fixed Sobol' set
    (tanh/erf, K ≥ 3; see `_split_orthants`); the label–label term of two tasks on shared
    inputs uses P(y_t | h, Δ_u) inside the cones of y_u (`_label_label_term`), or for two
    two-class tasks P(y_t, y_u | h) in closed form over h alone (`_label_label_joint2`).
Every right-hand side is computed as two parts that add up to it (`linear_terms`,
`nonlinear_terms`); given an executor (``helper``: `numeric.solve` passes its forked worker while
an ODE is integrated) the second part runs there.  The term code is written once for both number
types: a ``rules`` object supplies the arithmetic, the quadrature rules and the routes that differ
(`DoubleRules` here; `mp_online.MpRules` runs the same code on object arrays of mpf).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from mtsp.errors import RequestError

from .activations import activation
from .cone import DOUBLE, condition, label_cones
from .model import State, TheoryModel, argmax_cone, cone_stack
from .pointwise import cone1_probability, cone1_stein, cone2_probability, cone2_stein
from .quadrature import ConeResult, cone_expectation, gaussian_factor

__all__ = ["Accuracy", "Moments", "moments", "rhs", "rhs_state", "linear_terms", "assemble_linear",
           "nonlinear_terms", "assemble_nonlinear", "terms"]


def _is_count(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Accuracy:
    """The double path's accuracy settings: point budgets of the product rules (per cone
    integral), the Sobol' and cut-rule tiers, and the routes of the label terms.  Validated on
    construction: an invalid value raises RequestError naming ``accuracy.<field>``."""
    budget: int = 6000          # smooth + label integrals of the equations of motion
    metric_budget: int = 40000  # pure cone probabilities (errors)
    qmc_points: int = 2 ** 13   # nonlinear-trunk errors (randomised QMC of the Rao–Blackwellised
    #                             integrand), per replicate: standard errors ≈ 1e-4
    qmc_replicates: int = 8
    qmc_seed: int = 0           # scrambling of the fixed Sobol' tier (a second seed estimates its error)
    sobol_points: int = 2 ** 14  # integrals over h of trunks wider than MAX_SPLIT_K (fixed Sobol')
    relu_split: bool = True     # relu trunks with K > MAX_SPLIT_K: Sobol' inside each sign orthant
    split_k3: bool = False      # tanh / erf with K = 3: the sign-orthant product rule instead of fixed
    #                             Sobol' (7–10× the time of a right-hand side; set by accuracy="high")
    #                             (False: across the kinks — the early-stopping scans only)
    cut_errors: bool = True     # nonlinear trunks with K ≤ 2: errors by the cut rule (exact tier)
    #                             instead of randomised QMC
    cut_nodes: int = 40         # its tanh–sinh nodes on the outer level (K = 2; K = 1 needs none)
    cut_nodes3: tuple = ()      # K = 3: the cut rule's nodes per level (η₁, η₂, η₃), `tie_cuts`
    #                             (exact tier, ≈ 1e-7 at (24, 32, 24) but 0.2–8 s per task and time);
    #                             () = randomised QMC (SE ≈ 1e-4), the default: solves stay under 2 s
    cut_loss_nodes: int = 0     # nonlinear trunks: the test loss at the points of the errors' cut rule,
    #                             this many nodes per innermost piece (K ≤ 2; `metrics.cut_rule_loss`);
    #                             0: by one integral over h (`metrics._nonlinear_loss`, the double's: faster,
    #                             less exact, benchmarks/results/loss_route_nonlinear.txt)
    label_logit_nodes: int = 96  # the cut-rule loss's label part: nodes per half-line of h_k (`metrics.label_logits`)
    fast_labels: bool = True    # label terms in closed form given the conditioning fields
    #                             (`label_given_h`: h for nonlinear trunks, the partner's logits for
    #                             linear ones) where valid; False: the label cones integrated directly
    joint_labels: bool = True   # two two-class tasks on shared inputs: the label–label term by
    #                             P(y_t, y_u | h) in closed form (`_label_label_joint2`)
    pair_qmc: int = 2 ** 13     # 4-dim label–label terms (K = 2, C = 3): fixed Sobol' points at the
    #                             default sobol_points, scaled with it (0: the product rule)

    def __post_init__(self):
        for name in ("budget", "metric_budget", "qmc_points", "qmc_replicates", "sobol_points",
                     "cut_nodes", "qmc_seed", "pair_qmc", "cut_loss_nodes", "label_logit_nodes"):
            v = getattr(self, name)
            low = 0 if name in ("qmc_seed", "pair_qmc", "cut_loss_nodes") else 1
            if not (_is_count(v) and v >= low):
                raise RequestError(f"accuracy.{name}", f"expected an integer >= {low}, got {v!r}")
        for name in ("relu_split", "split_k3", "cut_errors", "fast_labels", "joint_labels"):
            if not isinstance(getattr(self, name), bool):
                raise RequestError(f"accuracy.{name}", f"expected True or False, got {getattr(self, name)!r}")
        n3 = self.cut_nodes3
        if not (isinstance(n3, tuple) and len(n3) in (0, 3) and all(
                _is_count(n) and n >= 1 for n in n3)):
            raise RequestError("accuracy.cut_nodes3", f"expected () or a tuple of three integers >= 1 "
                               f"(nodes per level η₁, η₂, η₃), got {n3!r}")


@dataclass
class Moments:
    """Per-task expectations from which the equations are assembled.

    m1[t]    = E[(a_t − b_{t,y_t}) ℓᵀ], ℓ = (h, λ)          (K × (K+M))
    m2[t,s]  = E[(a_t − b_{t,y_t})(a_s − b_{s,y_s})ᵀ]       (K × K)
    mv[t]    = E[(s_t − e_{y_t}) g(h)ᵀ]                      (C_t × K)
    loss[t]  = E[CE(z_t, y_t)]
    """
    m1: list
    m2: dict
    mv: list
    loss: np.ndarray


class DoubleRules:
    """How the term code is executed in double: float64 arrays (`cone.DOUBLE`), the rules of
    `quadrature.cone_expectation` at the `Accuracy` budgets (product rules, fixed Sobol' tiers),
    `pointwise`'s formulas.  `mp_online.MpRules` offers the same in mpmath, so that one term code
    (`_linear_part`, `label_given_h`, …) runs in either arithmetic."""
    ar = DOUBLE
    lift = staticmethod(np.asarray)   # floats → this number type (`TheoryModel.field_cov`, `engine.parameters`)
    factor = staticmethod(gaussian_factor)   # F Fᵀ = the field covariance
    sobol = True            # has the fixed-Sobol' tier of `SoftmaxRoute.sobol`
    pair_by_transpose = False   # P(y_s, y_t) integrated on its own, not as P(y_t, y_s)ᵀ
    decide_at = None        # routes are decided on the state itself
    randomised = True       # has randomised QMC: the errors of nonlinear trunks where the cut rule cannot go
    processes = 1           # `metrics.task_metrics` in this process (the double solve's second: `workers.SolveJobs`)
    key = ()                # what the teacher-only caches are keyed by besides the budget
    exp, log = staticmethod(np.exp), staticmethod(np.log)
    cone1, cone1_stein = staticmethod(cone1_probability), staticmethod(cone1_stein)
    cone2, cone2_stein = staticmethod(cone2_probability), staticmethod(cone2_stein)

    @staticmethod
    def rows(x):
        return x

    @staticmethod
    def scalar(x):
        return float(x)

    @staticmethod
    def expect(factor, cone, proj, fn, lin=None, **kw) -> ConeResult:
        return cone_expectation(factor, cone, proj, fn, lin, **kw)

    @staticmethod
    def terms(model, st, factor, acc, helper=None) -> dict:
        """The integrals at ``st`` (`linear_terms` / `nonlinear_terms`: two parts, the second on ``helper``)."""
        return (linear_terms if model.linear else nonlinear_terms)(model, st, factor, acc, helper)

    @staticmethod
    def probability(factor, cone, budget: int):
        """P(cone) by the product rule (the last cone coordinate integrated exactly)."""
        one = lambda p: (np.ones((p.shape[0], 1)), None)  # noqa: E731
        return cone_expectation(factor, cone, np.zeros((0, factor.shape[0])), one, skip_last_cone=True,
                                budget=budget).plain[0]

    @staticmethod
    def pinv_gram(G):
        return np.linalg.pinv(G, rcond=1e-12)

    # `metrics.task_metrics`
    def for_metrics(self, model, st, factor, acc, tasks, label):
        """These rules at ``st``: routes decided on the state itself, every setup within reach."""
        return self

    @staticmethod
    def agreement(model, st, factor, t, fields):
        """A linear trunk's agreement by a route other than the cones: none (`metrics.linear_agreement`)."""
        return None

    # the routes over the trunk fields h of a nonlinear trunk
    @staticmethod
    def activation(name):
        return activation(name)

    @staticmethod
    def h_integral(*args, **kw):
        return h_integral(*args, **kw)

    @staticmethod
    def labels_given_h(model, factor, acc):
        return _labels_given_h(model, factor, acc)

    @staticmethod
    def label_label(*args):
        return _label_label_term(*args)


DOUBLE_RULES = DoubleRules()


def _independent_rows(Fu: np.ndarray, tol: float = 1e-9) -> list:
    """Indices of a maximal set of linearly independent rows (in order, Gram–Schmidt on a float
    copy): the logit differences of a trunk narrower than C − 1 are dependent, and conditioning
    on them needs a basis."""
    Fu = np.asarray(Fu, dtype=float)
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


def _diff_rows(rows: np.ndarray) -> np.ndarray:
    """Rows of the logit differences z_j − z_0 (j ≥ 1): softmax depends on nothing else."""
    return rows[1:] - rows[0]


def softmax(z: np.ndarray, axis: int = 1, rules=DOUBLE_RULES) -> np.ndarray:
    """Row-wise softmax (max-shifted; leaner than scipy's for the small class counts here)."""
    e = rules.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def logsumexp(z: np.ndarray, axis: int = 1, rules=DOUBLE_RULES) -> np.ndarray:
    m = z.max(axis=axis, keepdims=True)
    return (m + rules.log(rules.exp(z - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def _softmax_from_diffs(u: np.ndarray, rules=DOUBLE_RULES) -> np.ndarray:
    z = np.concatenate([rules.ar.zeros((u.shape[0], 1)), u], axis=1)
    return softmax(z, 1, rules)


def _lse_from_diffs(u: np.ndarray, rules=DOUBLE_RULES) -> np.ndarray:
    z = np.concatenate([rules.ar.zeros((u.shape[0], 1)), u], axis=1)
    return logsumexp(z, 1, rules)


def _needed_pairs(model: TheoryModel):
    T = model.n_tasks
    if model.inputs == "shared":
        return [(t, s) for t in range(T) for s in range(T)]
    return [(t, t) for t in range(T)]


_pair_prob_cache: dict = {}


def _label_pair_probs(model: TheoryModel, factor, t: int, s: int, acc: Accuracy, rules=DOUBLE_RULES) -> np.ndarray:
    """P(y_t = c, y_s = d): teacher-only, constant in time — cached by (T, σ, t, s, the rules)."""
    if rules.pair_by_transpose and t > s:
        return _label_pair_probs(model, factor, s, t, acc, rules).T
    key = (model.gram.tobytes(), model.noise.tobytes(), t, s, acc.metric_budget, rules.key)
    if key in _pair_prob_cache:
        return _pair_prob_cache[key]
    Ct, Cs = model.classes[t], model.classes[s]
    out = rules.ar.zeros((Ct, Cs))
    for c in range(Ct):
        for d in range(Cs):
            rows = cone_stack(argmax_cone(model.rows_nu(t), c), argmax_cone(model.rows_nu(s), d))
            out[c, d] = rules.probability(factor, rows, acc.metric_budget)
    _pair_prob_cache[key] = out
    return out


PAIR_SOBOL_DIMS = 4  # softmax integrals of this many logit dimensions with a wide task: fixed Sobol' instead of pieces
# logit-difference std above which softmax integrals are split by argmax: the smooth rule over the
# logit differences of a three-class task errs by 3e-7 at spread 2.0 but 2e-5 at 2.88, the split
# pieces by ≤ 5e-10 at any spread (benchmarks/results/split_spread.txt)
SPLIT_SPREAD = 2.0
PAIR_SOBOL_SPREAD = 3.0  # integrals of PAIR_SOBOL_DIMS dimensions: wide (fixed Sobol') above this spread only


@dataclass(frozen=True)
class SoftmaxRoute:
    """The route of one softmax-type integral of a linear trunk, decided once per state
    (`linear_routes`) and executed by the double path (`_linear_part`) and the mp path
    (`mp_online.MpRules`) alike.  ``kind``: "self" (E[s_t s_tᵀ], lse_t, E[s_t ℓᵀ]),
    "pair" (E[s_t s_sᵀ], t < s), "labelsoft" (E[1{y_t = c} s_s] by P(y_t | u_s) in closed form),
    "cone" (the same for class ``c`` by its label cone); ``tasks``: whose logit differences u are
    integrated; ``wide``: those of them whose logits spread beyond SPLIT_SPREAD, whose argmax
    cones split the domain; ``mean_split``: also split by the argmax cones of E[ν_t | u_s] (a
    steep P(y_t | u_s)); ``sobol``: the double path takes fixed Sobol' points over the whole space
    instead of the pieces (the mp path has no such tier: it integrates the pieces)."""
    kind: str
    t: int
    s: int
    tasks: tuple
    c: int = -1
    wide: tuple = ()
    mean_split: bool = False
    sobol: bool = False


def _softmax_route(model, factor, diffs, spread, kind, t, s, tasks, c=-1, cone=False, mean=False):
    """The `SoftmaxRoute` of one integral over the logit differences of ``tasks`` (``diffs``: every
    task's, ``spread``: their spreads, wide beyond SPLIT_SPREAD); fixed Sobol' where the whole
    space (no label cone ``cone``, no mean split) has PAIR_SOBOL_DIMS dimensions and a task wider
    than PAIR_SOBOL_SPREAD (such integrals are not split below that spread)."""
    wide = tuple(u for u in tasks if spread[u] > SPLIT_SPREAD)
    sobol = False
    if wide and not cone and not mean:
        Pf = np.vstack([diffs[u] for u in tasks]) @ factor
        if np.linalg.matrix_rank(Pf, tol=1e-9 * max(np.abs(Pf).max(), 1e-300)) >= PAIR_SOBOL_DIMS:
            wide = tuple(u for u in wide if spread[u] > PAIR_SOBOL_SPREAD)
            sobol = bool(wide)
    return SoftmaxRoute(kind, t, s, tuple(tasks), c, wide, mean, sobol)


def linear_routes(model: TheoryModel, st: State, factor, acc: Accuracy) -> tuple[list, dict]:
    """The routes of every softmax-type integral of a linear trunk at a state, in the order the
    double path computes them, and the closed forms P(y_t | u_s) of its "labelsoft" routes
    ({(t, s): `label_given_h`(cond = u_s)}, NumPy).  The label terms take P(y_t | u_s) in closed
    form where `acc.fast_labels` and the conditional is not degenerate (residual variance above
    LABEL_MIN_RESIDUAL_SPLIT of the total), split by the argmax cones of E[ν_t | u_s] below
    LINEAR_SPLIT_RESIDUAL (`_label_softmax`); else the label cones, class by class."""
    T = model.n_tasks
    diffs = [_diff_rows(model.rows_logits(st, t)) for t in range(T)]
    spread = [np.linalg.norm(d @ factor, 2) for d in diffs]

    def route(kind, t, s, tasks, c=-1, cone=False, mean=False):
        return _softmax_route(model, factor, diffs, spread, kind, t, s, tasks, c, cone, mean)
    routes = [route("self", t, t, (t,)) for t in range(T)]
    pairs = _needed_pairs(model)
    routes += [route("pair", t, s, (t, s)) for t, s in pairs if t < s]
    closed = {}
    for t, s in pairs:
        p_at = label_given_h(model, factor, t, stein=False, cond=diffs[s],
                             min_residual=LABEL_MIN_RESIDUAL_SPLIT) if acc.fast_labels else None
        if p_at is not None:
            steep = label_given_h(model, factor, t, stein=False, cond=diffs[s],
                                  min_residual=LINEAR_SPLIT_RESIDUAL) is None
            routes.append(route("labelsoft", t, s, (s,), mean=steep))
            closed[t, s] = p_at
        else:
            routes += [route("cone", t, s, (s,), c=c, cone=True) for c in range(model.classes[t])]
    return routes, closed


def _softmax_expectation(model, st, factor, cone, tasks, proj, fn, lin, acc, split_by=(), deal=None, route=None,
                         rules=DOUBLE_RULES):
    """E[1{cone} Φ(p)], E[1{cone} Γ(p) ℓᵀ] with p the logit differences of `tasks` (linear trunk).

    When the logits are widely spread the softmax is nearly a step across the boundaries of the
    student's argmax cones and no smooth rule resolves it; the domain is then split exactly into
    those cones (Gaussian cones: z is linear in the fields), inside each of which the integrand is
    smooth and its boundary layer sits where the tanh–sinh nodes of the Genz coordinates cluster.
    ``route``: its `SoftmaxRoute` (which tasks split, or fixed Sobol'; decided here when None);
    ``split_by``: value rows whose argmax cones split the domain too.  ``deal``: a `_Deal` — only
    the integrals / pieces it deals to this part are computed (None when it dealt none here).
    ``rules``: the arithmetic and rules (`DoubleRules`; without a Sobol' tier the pieces are integrated)."""
    deal = deal or (lambda: True)
    if route is None:   # decided in double (at ``rules.decide_at`` where set)
        st_d, factor_d = rules.decide_at or (st, factor)
        diffs = {u: _diff_rows(model.rows_logits(st_d, u)) for u in tasks}
        spread = {u: np.linalg.norm(d @ factor_d, 2) for u, d in diffs.items()}
        route = _softmax_route(model, factor_d, diffs, spread, "", -1, -1, tasks, cone=cone is not None,
                               mean=bool(split_by))
    # split by the argmax of each task whose own logits spread widely (the others stay smooth,
    # and set the nodes of the pieces by their own spread)
    wide = [model.rows_logits(st, t) for t in route.wide] + list(split_by)
    if not wide:
        if not deal():
            return None
        return rules.expect(factor, cone, proj, fn, lin, budget=acc.budget, seed=acc.qmc_seed)
    if route.sobol and rules.sobol:
        # two tasks' logits on shared inputs (4 dims, C = 3, 3) with a wide one: the split pieces
        # are 4-dim cones whose steep softmax a product rule at this budget misses by ~5e-4,
        # while fixed Sobol' points over the whole space need no smoothness (measured on a
        # strong-teacher K = 4 trunk at t = 10, 20: 9e-6 / 1.4e-5 in 2.2 ms, against 5.5e-4 /
        # 4.9e-4 in 11 ms for the pieces; the reference: randomised QMC with 2^22 points)
        if not deal():
            return None
        return rules.expect(factor, None, proj, fn, lin, rule="qmc", budget=acc.sobol_points, seed=acc.qmc_seed)
    smooth = [_diff_rows(model.rows_logits(st, t)) for t in route.tasks if t not in route.wide]
    smooth = np.vstack(smooth) if smooth else np.zeros((0, model.n_fields))
    plain = linear = None
    for pieces in itertools.product(*[range(z.shape[0]) for z in wide]):
        if not deal():
            continue
        r = rules.expect(factor, cone_stack(cone, *[argmax_cone(z, c) for z, c in zip(wide, pieces)]),
                         proj, fn, lin, budget=acc.budget, seed=acc.qmc_seed, spread_rows=smooth)
        plain = r.plain if plain is None else plain + r.plain
        linear = None if lin is None else (r.linear if linear is None else linear + r.linear)
    return None if plain is None else ConeResult(plain, linear)


def linear_terms(model: TheoryModel, st: State, factor, acc: Accuracy, helper=None) -> dict:
    """Integrals of a linear trunk (and glm): a_t = V_tᵀ s_t, b_{t,c} = V_t[c] do not depend on h,
    so every smooth integrand is a function of the logit differences of one or two tasks.

    The integrals (and the pieces of split ones) are dealt alternately to two parts that are
    added: with an executor ``helper`` (anything with ``submit(fn, *args)`` returning a future)
    the second part runs there — the same sums in the same order either way, so the numbers do
    not depend on it."""
    return _finish_linear(model, _in_two_parts(_linear_part, model, st, factor, acc, helper))


def _in_two_parts(part_fn, model, st, factor, acc, helper=None) -> dict:
    """part_fn(..., (0, 2)) + part_fn(..., (1, 2)), the second submitted to the executor
    ``helper`` if one is given: the same sums in the same order either way."""
    if helper is not None:
        job = helper.submit(part_fn, model, st, factor, acc, (1, 2))
        return _add_terms(part_fn(model, st, factor, acc, (0, 2)), job.result())
    return _add_terms(part_fn(model, st, factor, acc, (0, 2)), part_fn(model, st, factor, acc, (1, 2)))


class _Deal:
    """Deals the successive integral calls of a right-hand side to part i of n."""

    def __init__(self, part):
        self.i, self.n = (0, 1) if part is None else part
        self.k = -1

    def __call__(self) -> bool:
        self.k += 1
        return self.k % self.n == self.i


def _finish_linear(model: TheoryModel, terms: dict) -> dict:
    for (t, s) in list(terms["B"]):
        if t < s:
            terms["B"][s, t] = terms["B"][t, s].T
    return terms


def _linear_part(model: TheoryModel, st: State, factor, acc: Accuracy, part=None, rules=DOUBLE_RULES) -> dict:
    """The integrals of `linear_terms` dealt to ``part`` = (i, n); the others are zero (the
    teacher-only label moments belong to part 0).  ``rules``: the arithmetic and its rules
    (`DoubleRules`, or `mp_online.MpRules` with the state and factor as object arrays of mpf;
    the routes are decided in double, `linear_routes`)."""
    T, K, M = model.n_tasks, model.K, model.M
    ar = rules.ar
    deal = _Deal(part)
    ell = np.vstack([model.rows_h(), model.rows_lambda()])  # ℓ = (h, λ)
    diffs = [_diff_rows(model.rows_logits(st, t)) for t in range(T)]
    Es = [ar.zeros((C, K + M)) for C in model.classes]     # E[s_t ℓᵀ]  (C_t × (K+M))
    Ess = {}                                               # E[s_t s_sᵀ]
    Else = ar.zeros(T)
    routes, closed = linear_routes(model, *(rules.decide_at or (st, factor)), acc)
    if rules.decide_at:   # the closed forms P(y_t | u_s) in this arithmetic
        closed = {ts: label_given_h(model, factor, ts[0], stein=False, cond=diffs[ts[1]], min_residual=None,
                                    rules=rules) for ts in closed}
    pairs = _needed_pairs(model)
    Eys = {(t, s): ar.zeros((model.classes[t], model.classes[s])) for t, s in pairs}  # E[1{y_t=c} s_s]
    for r in routes:
        t, s = r.t, r.s
        if r.kind == "self":
            C = model.classes[t]

            def fn(u, C=C):
                sm = _softmax_from_diffs(u, rules)
                phi = np.concatenate([(sm[:, :, None] * sm[:, None, :]).reshape(len(u), -1),
                                      _lse_from_diffs(u, rules)[:, None]], axis=1)
                return phi, sm
            Ess[t, t] = ar.zeros((C, C))
            res = _softmax_expectation(model, st, factor, None, r.tasks, diffs[t], fn, ell, acc, deal=deal, route=r,
                                       rules=rules)
            if res is not None:
                Ess[t, t] = res.plain[:C * C].reshape(C, C)
                Else[t] = res.plain[-1]
                Es[t] = res.linear
        elif r.kind == "pair":
            Ct, Cs = model.classes[t], model.classes[s]

            def fn2(u, Ct=Ct):
                a, b = _softmax_from_diffs(u[:, :Ct - 1], rules), _softmax_from_diffs(u[:, Ct - 1:], rules)
                return (a[:, :, None] * b[:, None, :]).reshape(len(u), -1), None
            Ess[t, s] = ar.zeros((Ct, Cs))
            res = _softmax_expectation(model, st, factor, None, r.tasks, np.vstack([diffs[t], diffs[s]]),
                                       fn2, None, acc, deal=deal, route=r, rules=rules)
            if res is not None:
                Ess[t, s] = res.plain.reshape(Ct, Cs)
        else:
            _label_softmax(model, st, factor, acc, r, diffs[s], closed.get((t, s)), Eys[t, s], deal, rules)
    if deal.i == 0:
        Py, Eyl = _label_moments(model, factor, acc, rules)         # P(y_t = c), E[1{y_t=c} ℓ]
        P_pair = {(t, s): _label_pair_probs(model, factor, t, s, acc, rules) for (t, s) in pairs if t != s}
    else:
        Py = [ar.zeros(C) for C in model.classes]
        Eyl = [ar.zeros((C, K + M)) for C in model.classes]
        P_pair = {(t, s): ar.zeros((model.classes[t], model.classes[s])) for (t, s) in pairs if t != s}
    return {"A": Es, "B": Ess, "Lse": Else, "Y": Eys, "P": Py, "L": Eyl, "PP": P_pair}


_label_moment_cache: dict = {}


def _label_moments(model: TheoryModel, factor, acc: Accuracy, rules=DOUBLE_RULES):
    """P(y_t = c) and E[1{y_t = c} ℓ], ℓ = (h, λ), for every task and class (linear trunks).

    Both follow from the time-independent label moments of the teacher: ℓ given the label fields
    ν_t is Gaussian with mean Cov(ℓ, ν_t) Σ_ν⁺ ν_t, so E[1{y_t=c} ℓ] = Cov(ℓ, ν_t) Σ_ν⁺ E[1{y_t=c} ν_t]
    (exact also for singular Σ_ν: ν_t lies in its range).  P and E[1{y=c} ν_t] — cone integrals
    of the label fields alone — are computed once per teacher (cached)."""
    ar = rules.ar
    ell = rules.rows(np.vstack([model.rows_h(), model.rows_lambda()]))
    Py, Eyl = [], []
    for t in range(model.n_tasks):
        nu = model.rows_nu(t)
        key = (model.gram.tobytes(), model.noise.tobytes(), t, acc.metric_budget, rules.key)
        if key not in _label_moment_cache:
            C = model.classes[t]
            P, M = ar.zeros(C), ar.zeros((C, C))
            one = lambda p: (ar.full((p.shape[0], 1), ar.const(1)),) * 2  # noqa: E731
            for c in range(C):
                r = rules.expect(factor, argmax_cone(nu, c), np.zeros((0, model.n_fields)), one,
                                 nu, budget=acc.metric_budget)
                P[c], M[c] = r.plain[0], r.linear[0]
            _label_moment_cache[key] = (P, M)
        P, M = _label_moment_cache[key]
        Fn = ar.matmul(rules.rows(nu), factor)
        gain = ar.matmul(ar.matmul(ar.matmul(ell, factor), Fn.T), rules.pinv_gram(ar.matmul(Fn, Fn.T)))   # Cov(ℓ,ν) Σ_ν⁺
        Py.append(P.copy())
        Eyl.append(ar.matmul(M, gain.T))
    return Py, Eyl


def _label_softmax(model: TheoryModel, st: State, factor, acc: Accuracy, route, u_rows, p_at, out, deal=None,
                   rules=DOUBLE_RULES):
    """E[1{y_t = c} softmax(z_s)_d] (C_t × C_s, added into ``out``), linear trunk; u = u_rows·f = the
    logit differences of task s; ``route``: its `SoftmaxRoute` ("labelsoft" with ``p_at`` =
    P(y_t | u), or "cone" for the row c).

    Given u the label fields ν_t are Gaussian, so P(y_t = c | u) is Φ (C_t = 2) or Φ₂ (C_t = 3)
    (`label_given_h` with cond = u_rows) and the term is one smooth integral over u of
    dimension C_s − 1 (split into the student's argmax cones when the logits spread widely),
    E[P(y_t = c | u) softmax(u)_d], instead of C_t cone integrals of dimension C_t + C_s − 2.
    Where p(y_t | u) is too steep for a smooth rule (residual variance below
    LINEAR_SPLIT_RESIDUAL of the total: a student that predicts task t well), p(y_t | u)
    is a smoothed step across the faces of the argmax cones of the conditional mean E[ν_t | u]:
    the domain is split exactly into those cones, so that the steep layers sit on the pieces'
    faces, where the tanh–sinh nodes of the Genz coordinates cluster.  Only a degenerate
    conditional (residual ≤ LABEL_MIN_RESIDUAL_SPLIT, or C_t > 3) integrates the label cones."""
    t, s = route.t, route.s
    Ct, Cs = model.classes[t], model.classes[s]
    if route.kind == "labelsoft":
        def fn(u):
            sm = _softmax_from_diffs(u, rules)
            return (p_at(u)[:, :, None] * sm[:, None, :]).reshape(len(u), -1), None
        split = []
        if route.mean_split:  # value rows of E[ν_t | u] acting on the fields
            ind = _independent_rows(rules.ar.matmul(u_rows, factor))
            ind = ind if len(ind) < len(u_rows) else slice(None)
            A_nu = _given_h(model, factor, model.rows_nu(t), u_rows[ind], rules)[0]
            split = [rules.ar.matmul(A_nu, u_rows[ind])]
        r = _softmax_expectation(model, st, factor, None, route.tasks, u_rows, fn, None, acc, split_by=split,
                                 deal=deal, route=route, rules=rules)
        if r is not None:
            out[:] = r.plain.reshape(Ct, Cs)
        return
    r = _softmax_expectation(model, st, factor, argmax_cone(model.rows_nu(t), route.c), route.tasks, u_rows,
                             lambda u: (_softmax_from_diffs(u, rules), None), None, acc, deal=deal, route=route,
                             rules=rules)
    if r is not None:
        out[route.c] = r.plain


def assemble_linear(model: TheoryModel, st: State, terms: dict) -> Moments:
    """Moments of a linear trunk from its integrals (hand-written reference assembly):

    m1_t = V_tᵀ (A_t − L_t),  mv_t = (A_t − L_t)[:, :K],
    m2_tt = V_tᵀ (B_tt − Y_ttᵀ − Y_tt + diag P_t) V_t,
    m2_ts = V_tᵀ (B_ts − Y_stᵀ − Y_ts + P_ts) V_s,
    loss_t = Lse_t − Σ_c (V_t[c] − V_t[0])·L_t[c, :K]
    with A_t = E[s_t ℓᵀ], B_ts = E[s_t s_sᵀ], Y_ts[c] = E[1{y_t=c} s_s], P_t[c] = P(y_t = c),
    L_t[c] = E[1{y_t=c} ℓ], P_ts[c, d] = P(y_t = c, y_s = d), Lse_t = E[lse(z_t − z_t0)]."""
    T, K = model.n_tasks, model.K
    V = st.V
    Es, Ess, Eys, Py, Eyl = terms["A"], terms["B"], terms["Y"], terms["P"], terms["L"]
    m1, mv, m2 = [], [], {}
    for t in range(T):
        m1.append(V[t].T @ (Es[t] - Eyl[t]))
        mv.append(Es[t][:, :K] - Eyl[t][:, :K])
    for t, s in _needed_pairs(model):
        if t == s:
            Y = Eys[t, t]
            m2[t, s] = V[t].T @ (Ess[t, t] - Y.T - Y + np.diag(Py[t])) @ V[t]
        else:
            m2[t, s] = V[t].T @ (Ess[t, s] - Eys[s, t].T - Eys[t, s] + terms["PP"][t, s]) @ V[s]
    loss = np.array([terms["Lse"][t] - sum((V[t][c] - V[t][0]) @ Eyl[t][c, :K]
                                           for c in range(model.classes[t])) for t in range(T)])
    return Moments(m1, m2, mv, loss)


MAX_SPLIT_K = 2       # tanh / erf trunks: sign orthants up to this K, fixed Sobol' above
MAX_SPLIT_K_RELU = 4  # relu trunks: inside an orthant g is linear (Sobol' would meet its kinks)
PAIR_DIV = 2  # the label–label term (O(η²)) gets budget / PAIR_DIV nodes


def _orthant_signs(K: int):
    return list(itertools.product((1.0, -1.0), repeat=K))


def _split_orthants(model: TheoryModel, acc: Accuracy | None = None) -> bool:
    """Whether integrals over h are split into its 2^K sign orthants (nonlinear trunks with
    K ≤ MAX_SPLIT_K; relu up to MAX_SPLIT_K_RELU).

    relu is linear inside each orthant, so the split makes its integrands smooth; erf and tanh
    change on the scale 1 of h around h = 0 while h may spread much wider, and after the split
    that transition sits at the orthant boundary, where the tanh–sinh nodes of the Genz
    coordinates cluster (measured: Gauss–Hermite errs by 7.7e-3 on E[sech² h] at std 1.6 with 16
    nodes; the split rule with 8 nodes per axis agrees with Monte Carlo at std 5).  For K ≥ 3 the
    2^K tensor grids cost more than they gain: a fixed scrambled Sobol' set of
    `Accuracy.sobol_points` over the whole of h is both faster and more accurate (measured on a
    two-task tanh trunk with K = 4 against a 300 000-point reference: max relative RHS error
    1.8e-4 with 2^14 points in 0.02 s, against 3.7e-3 in 0.18 s for the split grid of 6000 nodes
    per orthant).  For K = 3 the split rule is the accurate one and `Accuracy.split_k3` (set by
    accuracy="high") takes it, at 7–10× the time of the 2^14-point rule (0.14–0.22 s per
    right-hand side).  Against the mp path (`mtsp check`, two C = 2 tasks on shared inputs, dps
    20): tanh at t = 0.5, every term within 1.2e-6 relative (fixed Sobol' 2^14: 1.3e-3); erf at
    t = 2, within 1.3e-7 (fixed Sobol': 8.1e-4).  relu trunks keep the split up to MAX_SPLIT_K_RELU: Sobol' points across its
    kinks err by 2e-3 at K = 4 where the split product rule errs by 1e-5."""
    relu = model.activation == "relu" and (acc is None or acc.relu_split)
    return not model.linear and model.K <= max(MAX_SPLIT_K_RELU if relu else 0, _product_rule_max_k(acc))


def _product_rule_max_k(acc: Accuracy | None) -> int:
    """The widest trunk whose sign orthants get the product rule (wider split ones: Sobol' inside
    each orthant): MAX_SPLIT_K, or 3 with `Accuracy.split_k3`."""
    return 3 if acc is not None and acc.split_k3 else MAX_SPLIT_K


def h_integral(model: TheoryModel, st: State, factor, acc: Accuracy, cone, rows, fn, lin=None, *,
               reduce: bool = False, budget: int | None = None, node_part=None,
               qmc: int | None = None) -> tuple:
    """(plain, linear) of `cone_expectation` for an integrand over the trunk fields h (and the
    label cone `cone`): over the sign orthants of h (`_split_orthants`) with the product rule
    (K ≤ MAX_SPLIT_K, at least `orthant_nodes` per axis) or Sobol' points inside each (relu,
    K > MAX_SPLIT_K), or one fixed-Sobol' integral of `acc.sobol_points` points over all of h.
    ``budget`` (default `acc.budget`) scales the points of any rule; ``node_part``: see
    `cone_expectation`; ``qmc``: that many fixed Sobol' points over the sign orthants instead of
    their product rules."""
    budget = budget or acc.budget  # points of every rule scale as budget / acc.budget
    if not _split_orthants(model, acc):
        r = cone_expectation(factor, cone, rows, fn, lin, rule="qmc",
                             budget=acc.sobol_points * budget // acc.budget,
                             seed=acc.qmc_seed, reduce=reduce, node_part=node_part)
        return r.plain, r.linear
    # the orthants: one reduction, all pieces' nodes through one integrand call
    if qmc is not None:
        kw = dict(rule="qmc", budget=qmc >> model.K)
    elif model.K > _product_rule_max_k(acc):  # relu, K = 3, 4: Sobol' inside each orthant
        kw = dict(rule="qmc", budget=max(acc.sobol_points >> model.K, 1024) * budget // acc.budget)
    else:
        kw = dict(budget=budget, spread_nodes=False, min_nodes=orthant_nodes(st))
    H = model.rows_h()
    # rows h_k > 0 (strict); sign-flipped, h_k ≤ 0 (non-strict: relu′(0) = 0 puts h = 0 there)
    base = _with_split(cone, (H, np.zeros(len(H), bool)))
    m0 = 0 if cone is None else len(cone[0] if isinstance(cone, tuple) else cone)
    signs = np.array([np.r_[np.ones(m0), sg] for sg in _orthant_signs(model.K)])
    r = cone_expectation(factor, base, rows, fn, lin, seed=acc.qmc_seed, reduce=reduce,
                         sign_batch=signs, node_part=node_part, **kw)
    return r.plain, r.linear


def _with_split(cone, split):
    if split is None:
        return cone
    if cone is None:
        return split
    return cone_stack(cone, split)


def orthant_nodes(st: State) -> int:
    """Nodes per axis inside the sign orthants of a nonlinear trunk: erf/tanh change over |h| ≲ 1
    near the orthant boundary while h spreads over s = √λ_max(Q); Monte-Carlo checks at s = 5
    (4e6 samples) need ~15 nodes (8 nodes: 2 % error in dR), s ≈ 1.3 is fine with 8."""
    s = float(np.sqrt(max(np.linalg.eigvalsh(st.Q)[-1], 0.0)))
    return int(np.clip(np.ceil(4 + 2.2 * s), 0, 20))


LABEL_GIVEN_H_MIN_RESIDUAL = 0.05  # residual/total variance of a label cone below which p(y|h) is too steep
LABEL_MIN_RESIDUAL_SPLIT = 1e-6    # linear trunks: below this even the split integrand is degenerate
LINEAR_SPLIT_RESIDUAL = 0.1        # linear trunks: label terms split by the argmax cones of E[ν|u] below this
#   (measured on the demo at t = 8, residual ratio 0.052: the unsplit 24-node rule errs by 1.9e-5, split 1.2e-6)


def _class_diffs(C: int, c: int) -> np.ndarray:
    """Rows e_c − e_j (j ≠ c): the cone {argmax = c} of C fields."""
    return np.array([np.eye(C)[c] - np.eye(C)[j] for j in range(C) if j != c])


def _cone_probability(mu: np.ndarray, Su: np.ndarray, stein: bool = False, prob: bool = True, rules=DOUBLE_RULES):
    """P(u > 0) for u ~ N(μ, S_u) of dimension 1 or 2, vectorised over the rows of μ (n × m):
    Φ(μ/s), or Φ₂ (Sheppard / Owen's T) for m = 2 (None when not `prob`).  With `stein`, also
    v (n × m) such that E[1{u > 0} (u − μ)] = S_u v: v_j = φ(μ_j/s_j)/s_j · P(u_{−j} > 0 | u_j = 0).
    The formulas are `pointwise.cone1_*` / `cone2_*` (printed from SymPy)."""
    if mu.shape[1] == 1:
        S00 = rules.scalar(Su[0, 0])
        pc = rules.cone1(mu[:, 0], S00) if prob else None
        v = rules.cone1_stein(mu, S00) if stein else None
        return pc, v
    args = (rules.scalar(Su[0, 0]), rules.scalar(Su[0, 1]), rules.scalar(Su[1, 1]))
    pc = rules.cone2(mu[:, 0], mu[:, 1], *args) if prob else None
    if not stein:
        return pc, None
    return pc, np.stack(rules.cone2_stein(mu[:, 0], mu[:, 1], *args), axis=1)


def _given_h(model: TheoryModel, factor, rows: np.ndarray, cond: np.ndarray | None = None, rules=DOUBLE_RULES):
    """Gaussian conditioning on h (or on other fields x = cond·f): fields X = rows·f are
    N(A x, S) given x, A = X F (cond F)⁺, S = X F (I − (cond F)⁺ cond F) Fᵀ Xᵀ."""
    ar = rules.ar
    return condition(ar, ar.matmul(rules.rows(rows), factor),
                     ar.matmul(rules.rows(model.rows_h() if cond is None else cond), factor))


def label_given_h(model: TheoryModel, factor, t: int, fields: str = "nu",
                  min_residual: float | None = LABEL_GIVEN_H_MIN_RESIDUAL, stein: bool = True,
                  cond: np.ndarray | None = None, rules=DOUBLE_RULES):
    """P(y_t = c | h) and E[1{y_t = c} (h, λ) | h] in closed form, for C_t ≤ 3.

    Given h the label fields ν_t are Gaussian, N(A h, S); the event y_t = c is the cone
    u = D_c ν_t > 0 of dimension C_t − 1: P = Φ(μ/s) (C = 2) or Φ₂ (C = 3, Owen's T), and by
    Stein's lemma with a mean, E[1{u>0} λ | h] = E[λ|h] P + Cov(λ, u|h) v with
    v_j = φ(μ_j/s_j)/s_j · P(u_{−j} > 0 | u_j = 0, h).  This turns every label term of a
    nonlinear trunk into one integral over h.  ``fields="lambda"`` gives the clean teacher class
    ȳ_t instead of y_t.  Returns None (use the label cones instead) when C_t > 3 or a cone's
    residual variance given h is below ``min_residual`` of its total (p(y|h) steep: smooth rules
    would not resolve it).  ``stein=False``: the probabilities alone, ``at(h) → p``; then ``cond``
    may name other conditioning fields than h (rows acting on the fields), of which a maximal
    independent set is conditioned on.  ``min_residual=None``: no test (the route is decided).
    ``rules``: the arithmetic (`DoubleRules`; mp: `mp_online.MpRules`, object arrays of mpf)."""
    C = model.classes[t]
    if C > 3:
        return None
    assert cond is None or not stein
    ar = rules.ar
    rows = model.rows_nu(t) if fields == "nu" else model.rows_lambda(t)
    Flam = ar.matmul(rules.rows(model.rows_lambda()), factor)
    Fx = ar.matmul(rules.rows(model.rows_h() if cond is None else cond), factor)
    ind = _independent_rows(Fx)
    ind = slice(None) if len(ind) == Fx.shape[0] else ind
    classes, (A_nu, S_nu, Q, proj) = label_cones(ar, ar.matmul(rules.rows(rows), factor), Fx[ind], Flam)
    A_lam = ar.matmul(Flam, ar.pinv(ar.matmul(rules.rows(model.rows_h()), factor))) if stein else None
    for c, (Au, Su, _) in enumerate(classes if min_residual is not None else ()):
        # steep p(y | h): residual variance small against the total
        total = np.linalg.eigvalsh(Su + Au @ Q @ A_nu.T @ _class_diffs(C, c).T)[-1]
        if np.linalg.eigvalsh(Su)[0] <= max(min_residual * total, 1e-300):
            return None

    def parts(h):
        """p (n × C) and the Stein vectors v_c (n × (C−1)) of every class."""
        n = len(h)
        x = h[:, ind]
        p = ar.zeros((n, C))
        vs = []
        for c, (Au, Su, Clu) in enumerate(classes):
            last = c == C - 1
            if last and not stein:
                p[:, c] = 1.0 - p[:, :c].sum(axis=1)
                break
            p[:, c], v = _cone_probability(ar.matmul(x, Au.T), Su, stein, prob=not last, rules=rules)
            if last:  # the classes partition the space
                p[:, c] = 1.0 - p[:, :c].sum(axis=1)
            vs.append(v)
        return p, vs

    def at(h):
        p, vs = parts(h)
        if not stein:
            return p
        L = ar.zeros((len(h), C, h.shape[1] + A_lam.shape[0]))
        for c, (_, _, Clu) in enumerate(classes):
            L[:, c, :h.shape[1]] = h * p[:, c:c + 1]
            L[:, c, h.shape[1]:] = (h @ A_lam.T) * p[:, c:c + 1] + vs[c] @ Clu.T
        return p, L
    # for contractions without the (n × C × (K+M)) array: L_c = [h p_c, (h A_λᵀ) p_c + v_c C_cᵀ]
    at.parts, at.A_lam, at.C_lam = parts, A_lam, [Clu for (_, _, Clu) in classes]
    return at


def _add_terms(a, b):
    """Elementwise sum of two term structures (dicts, lists and arrays of partial integrals)."""
    if isinstance(a, dict):
        return {k: _add_terms(a[k], b[k]) for k in a}
    if isinstance(a, list):
        return [_add_terms(x, y) for x, y in zip(a, b)]
    return a + b


def nonlinear_terms(model: TheoryModel, st: State, factor, acc: Accuracy, helper=None) -> dict:
    """Nonlinear trunk: integrals over h ∈ R^K (with the label cones), split into sign orthants.

    Every integral is a sum over quadrature nodes, so it is computed as two halves of its nodes
    (every other node) and added: with an executor ``helper`` the second half runs there while
    this process does the first — the same sums in the same order either way, so the numbers do
    not depend on it."""
    return _in_two_parts(_nonlinear_part, model, st, factor, acc, helper)


def _labels_given_h(model: TheoryModel, factor, acc: Accuracy, rules=DOUBLE_RULES):
    """The label routes of a nonlinear trunk: per task P(y_t | h) in closed form (`label_given_h`;
    None: the label cones are integrated) and whether it is steep (a well-trained student), so that
    the h-domain is split by the argmax cones of E[ν_t | h], whose faces carry the steep layer.
    (The Sobol' tiers, K > MAX_SPLIT_K, integrate the steep P(y_t | h) as it is: QMC needs no
    smoothness for its accuracy, and pieces would multiply its points.)"""
    labs = [label_given_h(model, factor, t, min_residual=LABEL_MIN_RESIDUAL_SPLIT) if acc.fast_labels
            else None for t in range(model.n_tasks)]
    sobol_tier = model.K > MAX_SPLIT_K
    steep = [lab is not None and not sobol_tier and label_given_h(model, factor, t, stein=False) is None
             for t, lab in enumerate(labs)]
    return labs, steep


def _nonlinear_part(model: TheoryModel, st: State, factor, acc: Accuracy, node_part=None, rules=DOUBLE_RULES) -> dict:
    """The integrals of `nonlinear_terms` over the nodes of part ``node_part`` = (i, n).

    Integrands are reduced by matrix products at the nodes (``cone_expectation(reduce=True)``):
    E[a_t a_uᵀ] = Σ_n w_n a_t(h_n) a_u(h_n)ᵀ = (w ⊙ a_t)ᵀ a_u, and so on.  ``rules``: the
    arithmetic and its routes over h (`DoubleRules`: `h_integral`, `_labels_given_h`,
    `_label_label_term`; mp: `mp_online.MpRules`)."""
    T, K, M = model.n_tasks, model.K, model.M
    ar = rules.ar
    g = rules.activation(model.activation)
    V = st.V
    ell = np.vstack([model.rows_h(), model.rows_lambda()])
    H = model.rows_h()
    pairs = _needed_pairs(model)
    h_integral = rules.h_integral

    def trunk(h):
        gh, dg = g(h)
        s = [softmax(gh @ V[t].T, 1, rules) for t in range(T)]
        a = [dg * (s[t] @ V[t]) for t in range(T)]
        return gh, dg, s, a

    partners = {t: sorted({u for (tt, u) in pairs if tt == t}) for t in range(T)}
    labs, steep = rules.labels_given_h(model, factor, acc)

    def label_parts(h, gh, dg, aw, w, t):
        """The label terms of task t given P(y_t=c|h) = p_c and ℓ̂_c = E[1{y_t=c} ℓ | h]
        = [h p_c, (h A_λᵀ) p_c + v_c C_cᵀ] (label_given_h): Σ_c w p_c a_u b_tcᵀ (per partner u),
        Σ_c w p_c b_tc b_tcᵀ, w p ⊗ g, Σ_c w p_c z_tc, Σ_c w b_tc ℓ̂_cᵀ (b_tc = g′ ⊙ V_t[c]),
        summed over the nodes (ℓ̂ contracted without being formed)."""
        lab = labs[t]
        p, vs = lab.parts(h)
        Vt = V[t]
        pw = p * w[:, None]
        pb = dg * (p @ Vt)                               # Σ_c p_c b_tc
        out = [(aw[u].T @ pb).ravel() for u in partners[t]]
        bb = sum(np.outer(Vt[c], Vt[c]) * ((dg * pw[:, c:c + 1]).T @ dg) for c in range(Vt.shape[0]))
        dgw = dg * w[:, None]
        bl = 0.0
        for c in range(Vt.shape[0]):
            X = (dgw * p[:, c:c + 1]).T @ h                # Σ_n w g′ p_c hᵀ
            lam = X @ lab.A_lam.T + (dgw.T @ vs[c]) @ lab.C_lam[c].T
            bl = bl + Vt[c][:, None] * np.hstack([X, lam])
        out += [bb.ravel(), (pw.T @ gh).ravel(), [(pw * (gh @ Vt.T)).sum()], np.ravel(bl)]
        return out

    # smooth (no label) part, and the label terms of the tasks with closed forms given h
    def fn0(h, w):
        gh, dg, s, a = trunk(h)
        aw = [x * w[:, None] for x in a]
        out = [(aw[t].T @ a[u]).ravel() for t, u in pairs]
        out += [((s[t] * w[:, None]).T @ gh).ravel() for t in range(T)]
        out += [[w @ logsumexp(gh @ V[t].T, 1, rules)] for t in range(T)]
        for t in range(T):
            if labs[t] is not None and not steep[t]:
                out += label_parts(h, gh, dg, aw, w, t)
        return np.concatenate(out), np.concatenate(aw, axis=1)

    plain, linear = h_integral(model, st, factor, acc, None, H, fn0, ell, reduce=True, node_part=node_part)
    pos = 0
    Eaa = {}
    for t, u in pairs:
        Eaa[t, u] = plain[pos:pos + K * K].reshape(K, K)
        pos += K * K
    Esg = []
    for t in range(T):
        C = model.classes[t]
        Esg.append(plain[pos:pos + C * K].reshape(C, K))
        pos += C * K
    Else = plain[pos:pos + T]
    pos += T
    Ea_l = [linear[t * K:(t + 1) * K] for t in range(T)]
    fast = {}
    for t in range(T):
        if labs[t] is not None and not steep[t]:
            C = model.classes[t]
            size = len(partners[t]) * K * K + K * K + C * K + 1 + K * (K + M)
            fast[t] = plain[pos:pos + size]
            pos += size
        elif labs[t] is not None:
            mean_rows = _given_h(model, factor, model.rows_nu(t), rules=rules)[0] @ H   # E[ν_t | h] on the fields

            def fn_lab(h, w, t=t):
                gh, dg, s, a = trunk(h)
                aw = [x * w[:, None] for x in a]
                return np.concatenate(label_parts(h, gh, dg, aw, w, t)), None
            fast[t] = sum(h_integral(model, st, factor, acc, argmax_cone(mean_rows, c), H, fn_lab,
                                     reduce=True, node_part=node_part)[0] for c in range(model.classes[t]))
    Eb_l = [ar.zeros((K, K + M)) for _ in range(T)]
    Eab = {(t, u): ar.zeros((K, K)) for t, u in pairs}    # Σ_c E[1{y_u=c} a_t b_ucᵀ]
    Ebb = {t: ar.zeros((K, K)) for t in range(T)}          # Σ_c E[1{y_t=c} b_tc b_tcᵀ]
    Eyg = [ar.zeros((C, K)) for C in model.classes]        # E[1{y_t=c} g(h)]
    Eyz = ar.zeros(T)

    def add_ab_bb(plain, t):
        """Accumulate the Eab (one K×K block per partner) and Ebb blocks that lead a label-term
        result vector; return the offset of what follows."""
        pos = 0
        for u in partners[t]:
            Eab[u, t] += plain[pos:pos + K * K].reshape(K, K)
            pos += K * K
        Ebb[t] += plain[pos:pos + K * K].reshape(K, K)
        return pos + K * K

    for t in range(T):
        C = model.classes[t]
        if t in fast:
            plain = fast[t]
            pos = add_ab_bb(plain, t)
            Eyg[t] += plain[pos:pos + C * K].reshape(C, K)
            pos += C * K
            Eyz[t] += plain[pos]
            pos += 1
            Eb_l[t] += plain[pos:pos + K * (K + M)].reshape(K, K + M)
            continue
        for c in range(C):
            cone = argmax_cone(model.rows_nu(t), c)

            def fn1(h, w, t=t, c=c):
                gh, dg, s, a = trunk(h)
                b = dg * V[t][c]
                bw = b * w[:, None]
                out = [(a[u].T @ bw).ravel() for u in partners[t]]
                out += [(bw.T @ b).ravel(), w @ gh, [w @ (gh @ V[t][c])]]
                return np.concatenate(out), bw
            plain, linear = h_integral(model, st, factor, acc, cone, H, fn1, ell, reduce=True,
                                       node_part=node_part)
            pos = add_ab_bb(plain, t)
            Eyg[t][c] = plain[pos:pos + K]
            Eyz[t] += plain[pos + K]
            Eb_l[t] += linear
    Ebb2 = {}
    for t, u in pairs:
        if t < u:
            Ebb2[t, u] = rules.label_label(model, st, factor, acc, t, u, model.activation, node_part)
            Ebb2[u, t] = Ebb2[t, u].T
    return {"Eal": Ea_l, "Ebl": Eb_l, "Esg": Esg, "Eyg": Eyg, "Eaa": Eaa, "Eab": Eab, "Ebb": Ebb,
            "Ebb2": Ebb2, "Lse": Else, "Eyz": Eyz}


def _label_label_joint2(model, st, factor, acc, t, u, g, node_part=None):
    """Σ_cd E[1{y_t=c, y_u=d} b_tc b_udᵀ] for two two-class tasks on shared inputs as one integral
    over h (K dims): given h the label differences x = (ν_t0 − ν_t1, ν_u0 − ν_u1) (> 0: class 0) are
    N(A h, S), so P(y_t = 0, y_u = 0 | h) = Φ₂ (`pointwise.cone2_probability`), the marginals Φ,
    and the other three joint probabilities by the partition.  Returns None where a label is
    nearly decided by h (residual variance below LABEL_GIVEN_H_MIN_RESIDUAL of the total)."""
    nt, nu = model.rows_nu(t), model.rows_nu(u)
    rows = np.vstack([nt[0] - nt[1], nu[0] - nu[1]])     # > 0: class 0
    A, S, Qh, _ = _given_h(model, factor, rows)
    total = np.diag(S) + np.einsum("ik,kl,il->i", A, Qh, A)
    if not (np.all(np.diag(S) > LABEL_GIVEN_H_MIN_RESIDUAL * total) and np.all(np.diag(S) > 1e-300)):
        return None
    K = model.K
    Vt, Vu = st.V[t], st.V[u]
    args = (float(S[0, 0]), float(S[0, 1]), float(S[1, 1]))

    def fn(h, w):
        mu = h @ A.T
        p00 = cone2_probability(mu[:, 0], mu[:, 1], *args)
        pt0 = cone1_probability(mu[:, 0], args[0])
        pu0 = cone1_probability(mu[:, 1], args[2])
        P = ((p00, pt0 - p00), (pu0 - p00, 1.0 - pt0 - pu0 + p00))   # P[c][d]
        _, dg = g(h)
        out = np.zeros((K, K))
        for c in range(2):
            for d in range(2):
                G = (dg * (w * P[c][d])[:, None]).T @ dg
                out += np.outer(Vt[c], Vu[d]) * G
        return out.ravel(), None
    return h_integral(model, st, factor, acc, None, model.rows_h(), fn, reduce=True,
                      budget=acc.budget // PAIR_DIV, node_part=node_part)[0].reshape(K, K)


def _label_label_term(model, st, factor, acc, t, u, activation_name, node_part=None):
    """Σ_cd E[1{y_t=c, y_u=d} b_tc b_udᵀ] (two tasks on shared inputs, an O(η²) term).

    Given h and task u's label differences Δ_u (which decide y_u), task t's label probabilities
    P(y_t = c | h, Δ_u) are closed forms (C_t ≤ 3), so the sum over c is done inside one cone
    integral per class d of u: E[1{y_u = d} (g′ ⊙ p_t V_t)(g′ ⊙ V_u[d])ᵀ], dimension
    K + C_u − 1 instead of K + C_t + C_u − 2 per class pair.  The roles of t and u are swapped
    when that makes the conditional probabilities smooth (a clean task's labels given a
    well-trained h and the other task's fields can be nearly decided; a noisy task's never are).
    Otherwise (C > 3, or both nearly decided) one cone integral per class pair, at a quarter of
    the budget.  The 4-dim case (K = 2 with C_b = 3) uses `Accuracy.pair_qmc` fixed Sobol' points."""
    K, V, H = model.K, st.V, model.rows_h()
    g = activation(activation_name)
    if acc.joint_labels and model.classes[t] == model.classes[u] == 2:
        out = _label_label_joint2(model, st, factor, acc, t, u, g, node_part)
        if out is not None:
            return out
    for a, b in ((t, u), (u, t)):
        cond = np.vstack([H, _diff_rows(model.rows_nu(b))])  # (h, Δ_b): Δ_b decides y_b
        p_a = label_given_h(model, factor, a, stein=False, cond=cond) if acc.fast_labels else None
        if p_a is None:
            continue
        out = np.zeros((K, K))
        for d in range(model.classes[b]):
            def fn(x, w, d=d):
                _, dg = g(x[:, :K])
                ba = dg * (p_a(x) @ V[a]) * w[:, None]
                return (ba.T @ (dg * V[b][d])).ravel(), None
            # 4 dimensions (K = 2, C_b = 3): fixed Sobol' points in the orthants' Genz coordinates
            # — measured on two-task K = 2 trunks, this O(η²) term errs by 1e-5 to 1e-4 at 1/3 to
            # 1/5 of the product rule's time, which errs by 4e-5 to 6e-4
            four_dims = acc.pair_qmc and model.K <= MAX_SPLIT_K and model.K + model.classes[b] - 1 >= 4
            qmc = max(acc.pair_qmc * acc.sobol_points // Accuracy.sobol_points, 1024) if four_dims else None
            out += h_integral(model, st, factor, acc, argmax_cone(model.rows_nu(b), d), cond, fn,
                              reduce=True, budget=acc.budget // PAIR_DIV, node_part=node_part,
                              qmc=qmc)[0].reshape(K, K)
        return out if a == t else out.T
    out = np.zeros((K, K))
    for c in range(model.classes[t]):
        for d in range(model.classes[u]):
            cone = cone_stack(argmax_cone(model.rows_nu(t), c), argmax_cone(model.rows_nu(u), d))

            def fn2(h, w, c=c, d=d):
                _, dg = g(h)
                bt, bu = dg * V[t][c], dg * V[u][d]
                return ((bt * w[:, None]).T @ bu).ravel(), None
            out += h_integral(model, st, factor, acc, cone, H, fn2, reduce=True,
                              budget=acc.budget // 4, node_part=node_part)[0].reshape(K, K)
    return out


def assemble_nonlinear(model: TheoryModel, st: State, terms: dict) -> Moments:
    """Moments of a nonlinear trunk from its integrals (hand-written reference assembly):

    m1_t = E[a_t ℓᵀ] − Σ_c E[1{y_t=c} b_tc ℓᵀ],  mv_t = E[s_t gᵀ] − (E[1{y_t=c} g])_c,
    m2_tt = E[a_t a_tᵀ] − Ab_tt − Ab_ttᵀ + Σ_c E[1{y_t=c} b_tc b_tcᵀ],
    m2_ts = E[a_t a_sᵀ] − Ab_ts − Ab_stᵀ + Σ_cd E[1{y_t=c, y_s=d} b_tc b_sdᵀ],
    with Ab_ts = Σ_c E[1{y_s=c} a_t b_scᵀ]; loss_t = E[lse z_t] − Σ_c E[1{y_t=c} z_tc]."""
    T = model.n_tasks
    m1 = [terms["Eal"][t] - terms["Ebl"][t] for t in range(T)]
    mv = [terms["Esg"][t] - terms["Eyg"][t] for t in range(T)]
    m2 = {}
    Eaa, Eab = terms["Eaa"], terms["Eab"]
    for t, u in _needed_pairs(model):
        if t == u:
            m2[t, u] = Eaa[t, t] - Eab[t, t] - Eab[t, t].T + terms["Ebb"][t]
        else:
            m2[t, u] = Eaa[t, u] - Eab[t, u] - Eab[u, t].T + terms["Ebb2"][t, u]
    return Moments(m1, m2, mv, terms["Lse"] - terms["Eyz"])


def terms(model: TheoryModel, st: State, acc: Accuracy = Accuracy(), helper=None) -> dict:
    """The numerical integrals of the equations at state `st` (see linear_terms/nonlinear_terms;
    ``helper``: an executor for half of them)."""
    factor = gaussian_factor(model.field_cov(st))
    return (linear_terms if model.linear else nonlinear_terms)(model, st, factor, acc, helper)


def moments(model: TheoryModel, st: State, acc: Accuracy = Accuracy(), helper=None) -> Moments:
    """All per-task expectations at the state `st`."""
    assemble = assemble_linear if model.linear else assemble_nonlinear
    return assemble(model, st, terms(model, st, acc, helper))


def rhs_state(model: TheoryModel, st: State, acc: Accuracy = Accuracy(), helper=None):
    """(dQ/dt, dR/dt, [dV_t/dt]) at state `st` — the equations in the module docstring."""
    mo = moments(model, st, acc, helper)
    K, T = model.K, model.n_tasks
    eta, etav, kappa = model.lr, model.head_lr, model.weight_decay
    if model.inputs == "shared":
        c = model.weights.copy()
    else:
        c = model.shares * model.weights
    Edl = sum(c[t] * mo.m1[t] for t in range(T))   # E[δ ℓᵀ]
    Edh, Edlam = Edl[:, :K], Edl[:, K:]
    if model.inputs == "shared":
        D = sum(model.weights[t] * model.weights[s] * mo.m2[t, s] for (t, s) in mo.m2)
    else:
        D = sum(model.shares[t] * model.weights[t] ** 2 * mo.m2[t, t] for t in range(T))
    dQ = -eta * (Edh + Edh.T) + eta ** 2 * D - 2 * eta * kappa * st.Q
    dR = -eta * Edlam - eta * kappa * st.R
    dV = tuple(-etav * c[t] * mo.mv[t] for t in range(T)) if model.train_heads else ()
    return dQ, dR, dV, mo


def rhs(model: TheoryModel, y: np.ndarray, acc: Accuracy = Accuracy(), helper=None) -> np.ndarray:
    """Packed right-hand side for ODE integrators (``helper``: an executor for half of it)."""
    st = model.unpack(y)
    dQ, dR, dV, _ = rhs_state(model, st, acc, helper)
    return model.pack(State(dQ, dR, dV if model.train_heads else st.V))
