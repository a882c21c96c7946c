"""Which right-hand side is right at t = 20 of examples/strong_teachers_tanh.toml: the double path
(generated NumPy module, what `mtsp solve` integrates) or the mp path (`mp_online`, what `mtsp check`
compares it with)?  `mtsp check --states 1` reported them ~10 % apart there (2026-12-06, stored log:
the mp path's one Gauss–Hermite rule over h was under-resolved at this Q; since then the mp path takes
the sign-orthant split here by itself — `mp_online.sign_patterns` — and `mtsp check` finds dQ within
3.6e-4, benchmarks/results/check_strong_teachers_t20.txt; the "mp" column of a rerun is that route).

Independent reference: direct Monte Carlo of MODEL.md's online right-hand side at the double solve's
state at t = 20 — (h, λ) sampled from [[Q, R], [Rᵀ, T]] (eigen-factorisation built here), ν = λ + σξ,
argmax labels, δ = g′(h) ⊙ Σ_t w_t V_tᵀ(softmax(z_t) − e_{y_t}) per sample — with the per-sample
formulas of tests/test_online.py (`mc_rhs`, nothing from mtsp.numeric produces the reference).
Prints every entry of dQ, dR, dV_t: MC ± SE, double, mp, and their z-scores against MC.

Also: the label-free integrals (Eaa, Esg, Lse) against a dense trapezoid rule; with --split-smooth the
mp integrals by the orthant-split route; with --errors gen_error / label_error (double, mp, MC).

Run: PYTHONPATH=. python benchmarks/strong_teachers_mc_check.py [--n 4000000] [--dps 20] [--mp-nodes N]
     [--split-smooth] [--errors]
"""
import argparse
import sys
import time
from pathlib import Path

import mpmath
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_online import Acc, g_and_dg, mc_rhs  # noqa: E402
from scipy.special import logsumexp, softmax  # noqa: E402

from mtsp.derive.codegen import load_module  # noqa: E402
from mtsp.numeric.model import theory_model  # noqa: E402
from mtsp.numeric.metrics import task_metrics  # noqa: E402
from mtsp.numeric.engine import generated_system, named_terms  # noqa: E402
from mtsp.numeric.mp_online import MpRules, mp_state, task_metrics_mp  # noqa: E402
from mtsp.numeric.online import Accuracy  # noqa: E402
from mtsp.derive import GENERATED  # noqa: E402
from mtsp.numeric.solve import solve_online  # noqa: E402
from mtsp.setup import load_setup  # noqa: E402


class StateFields:
    """(h, λ, ν) of one sample at a given state: z ~ N(0, [[Q, R], [Rᵀ, T]]) by a symmetric square
    root of that covariance (eigenvalues clipped at 0), ν = λ + σ ξ."""

    def __init__(self, model, state):
        self.model, self.state = model, state
        K = model.K
        C = np.block([[state.Q, state.R], [state.R.T, model.gram]])
        w, U = np.linalg.eigh(C)
        self.min_eig = float(w.min())
        self.S = U * np.sqrt(np.clip(w, 0, None))      # S Sᵀ = C
        self.K = K
        self.sigma = np.concatenate([np.full(c, s) for c, s in zip(model.classes, model.noise)])

    def sample(self, rng, n):
        z = np.einsum("ni,ji->nj", rng.standard_normal((n, self.S.shape[1])), self.S)
        h, lam = z[:, :self.K], z[:, self.K:]
        nu = lam + rng.standard_normal(lam.shape) * self.sigma
        return h, lam, nu


def mc_integrals(fields, n, seed, chunk=250_000):
    """Monte-Carlo (mean, SE) of the named reduced integrals of a nonlinear trunk, from their
    definitions (derive/integrands.py's docstring) written per sample with the sampled labels in place
    of their conditional probabilities p_tc = P(y_t = c | h): with z_t = V_t g(h), s_t = softmax(z_t),
    a_t = g′(h) ⊙ V_tᵀ s_t, b_tc = g′(h) ⊙ V_t[c], ℓ = (h, λ):
    Eaa_tu = E[a_t a_uᵀ], Eab_tu = E[a_t b_{u,y_u}ᵀ], Esg_t = E[s_t gᵀ], Eyg_t = E[e_{y_t} gᵀ],
    Ebb_t = E[b_{t,y_t} b_{t,y_t}ᵀ], Ebl_t = E[b_{t,y_t} ℓᵀ], Lse_t = E[log Σ_c e^{z_tc}],
    Eyz_t = E[z_{t,y_t}], Eal_t = E[a_t ℓᵀ], Ebb2_tu = E[b_{t,y_t} b_{u,y_u}ᵀ] (t ≠ u)."""
    model, st = fields.model, fields.state
    offs = np.concatenate([[0], np.cumsum(model.classes)])
    n_t = len(model.classes)
    rng = np.random.default_rng(seed)
    acc = {}

    def add(name, x, y=None):
        a = acc.setdefault(name, Acc())
        a.add(x) if y is None else a.add_outer(x, y)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        h, lam, nu = fields.sample(rng, m)
        g, dg = g_and_dg(model.activation, h)
        ell = np.concatenate([h, lam], axis=1)
        a, b, y, s, z = [], [], [], [], []
        for t in range(n_t):
            V = st.V[t]
            z.append(np.einsum("nk,ck->nc", g, V))
            s.append(softmax(z[t], axis=1))
            y.append(np.argmax(nu[:, offs[t]:offs[t + 1]], axis=1))
            a.append(dg * np.einsum("nc,ck->nk", s[t], V))
            b.append(dg * V[y[t]])
        for t in range(n_t):
            for u in range(n_t):
                add(f"Eaa{t}{u}", a[t], a[u])
                add(f"Eab{t}{u}", a[t], b[u])
                if t != u:
                    add(f"Ebb2{t}{u}", b[t], b[u])
            onehot = np.eye(model.classes[t])[y[t]]
            add(f"Esg{t}", s[t], g)
            add(f"Eyg{t}", onehot, g)
            add(f"Ebb{t}", b[t], b[t])
            add(f"Ebl{t}", b[t], ell)
            add(f"Lse{t}", logsumexp(z[t], axis=1)[:, None])
            add(f"Eyz{t}", z[t][np.arange(m), y[t]][:, None])
            add(f"Eal{t}", a[t], ell)
    return {k: v.result() for k, v in acc.items()}


def grid_label_free(model, st, step=0.01, span=9.0):
    """The label-free integrals Eaa_tu, Esg_t, Lse_t (expectations over h ~ N(0, Q) of smooth
    functions of h alone) by the tensor trapezoid rule in whitened coordinates h = L x (L Lᵀ = Q),
    x ∈ [−span, span]^K at spacing ``step`` — exponentially convergent for these analytic
    integrands; the run prints its change against twice the spacing."""
    L = np.linalg.cholesky(st.Q)
    xs = np.arange(-span, span + step / 2, step)
    w1 = np.exp(-xs ** 2 / 2) / np.sqrt(2 * np.pi) * step
    grids = np.meshgrid(*([xs] * model.K), indexing="ij")
    x = np.stack([g_.ravel() for g_ in grids], 1)
    w = np.ones(1)
    for _ in range(model.K):
        w = np.outer(w, w1).ravel()
    g, dg = g_and_dg(model.activation, x @ L.T)
    out, a = {}, []
    for t, V in enumerate(st.V):
        z = g @ V.T
        s = softmax(z, axis=1)
        a.append(dg * (s @ V))
        out[f"Esg{t}"] = np.einsum("n,nc,nk->ck", w, s, g)
        out[f"Lse{t}"] = np.array([[w @ logsumexp(z, axis=1)]])
    for t in range(len(st.V)):
        for u in range(len(st.V)):
            out[f"Eaa{t}{u}"] = np.einsum("n,nk,nl->kl", w, a[t], a[u])
    return out


def f64(x):
    if isinstance(x, mpmath.matrix):
        return np.array(x.tolist(), dtype=float)
    if isinstance(x, (list, tuple)):
        return [f64(v) for v in x]
    return np.asarray(x, dtype=float)


def table(name, mc, se, d, m):
    lines = []
    for idx in np.ndindex(mc.shape):
        zd = (d[idx] - mc[idx]) / se[idx]
        zm = (m[idx] - mc[idx]) / se[idx]
        lines.append(f"{name}{list(idx)!s:<8} MC {mc[idx]: .6f} ± {se[idx]:.6f}   double {d[idx]: .6f} (z {zd:+8.1f})"
                     f"   mp {m[idx]: .6f} (z {zm:+8.1f})")
    scale = np.abs(mc).max()
    lines.append(f"{name}: max |double − MC| / max|MC| = {np.abs(d - mc).max() / scale:.3e}, "
                 f"max |mp − MC| / max|MC| = {np.abs(m - mc).max() / scale:.3e}, max SE / max|MC| = "
                 f"{se.max() / scale:.1e}")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4_000_000)
    ap.add_argument("--t", type=float, default=20.0)
    ap.add_argument("--dps", type=int, default=20)
    ap.add_argument("--mp-nodes", type=int, default=None)
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--split-smooth", action="store_true",
                    help="also the mp named integrals by the orthant-split route (`MpRules(split_smooth=True)`, `engine.named_terms`; ("
                         "split_smooth=True)`, minutes) against the double")
    ap.add_argument("--errors", action="store_true",
                    help="also gen_error / label_error: double, mp, and Monte Carlo of the argmaxes")
    args = ap.parse_args()
    setup = load_setup(ROOT / "examples/strong_teachers_tanh.toml")
    model = theory_model(setup)
    acc = Accuracy()
    st = solve_online(setup, acc, times=[args.t], processes=1, generated=GENERATED).state(args.t)
    np.set_printoptions(precision=6, suppress=True)
    print(f"state at t = {args.t:g} (double solve, default accuracy):\nQ = {st.Q.tolist()}\nR = {st.R.tolist()}")
    for k, v in enumerate(st.V):
        print(f"V{k} = {v.tolist()}")
    mod = load_module(model, setup.name)
    dQ, dR, dV, _ = mod.rhs_state(model, st, acc)
    t0 = time.perf_counter()
    with mpmath.workdps(args.dps):
        system, rules = generated_system(GENERATED, model, "", "mpmath"), MpRules(args.mp_nodes, 1)
        terms_m = system.integrals(model, mp_state(st), rules=rules)
        dQm, dRm, dVm, _ = system.rhs_state(model, mp_state(st), rules=rules, terms=terms_m)
    dQm, dRm, dVm = f64(dQm), f64(dRm), f64(dVm)
    terms_d = mod.integrals(model, st, acc)
    print(f"mp right-hand side: dps {args.dps}, nodes {args.mp_nodes or 'default'}, "
          f"{time.perf_counter() - t0:.0f} s")
    fields = StateFields(model, st)
    print(f"smallest eigenvalue of the field covariance {fields.min_eig:.3e}")
    t0 = time.perf_counter()
    (Qm, Qse), (Rm, Rse), Vmc = mc_rhs(fields, args.n, args.seed)
    print(f"Monte Carlo: {args.n:.1e} samples, seed {args.seed}, {time.perf_counter() - t0:.0f} s")
    lines = table("dQ", Qm, Qse, np.asarray(dQ), dQm) + table("dR", Rm, Rse, np.asarray(dR), dRm)
    for k, (vm, vse) in enumerate(Vmc):
        lines += table(f"dV{k}", vm, vse, np.asarray(dV[k]), dVm[k])
    print("\n".join(lines))
    t0 = time.perf_counter()
    mc_terms = mc_integrals(fields, args.n, args.seed + 1)
    print(f"\nnamed integrals, Monte Carlo {args.n:.1e} samples, seed {args.seed + 1}, "
          f"{time.perf_counter() - t0:.0f} s; per integral: max relative difference to MC (by the largest |MC| entry), "
          f"max |z|")
    for name in sorted(terms_d):
        if name not in mc_terms or name not in terms_m:
            print(f"{name:<8} (no MC)")
            continue
        mc, se = mc_terms[name]
        d = np.asarray(terms_d[name], dtype=float).reshape(mc.shape)
        m = np.asarray(f64(terms_m[name]), dtype=float).reshape(mc.shape)
        scale = np.abs(mc).max()
        print(f"{name:<8} double {np.abs(d - mc).max() / scale:.2e} (|z| {np.max(np.abs(d - mc) / se):6.1f})   "
              f"mp {np.abs(m - mc).max() / scale:.2e} (|z| {np.max(np.abs(m - mc) / se):6.1f})   "
              f"SE/scale {se.max() / scale:.1e}")
    ref, ref2 = grid_label_free(model, st), grid_label_free(model, st, step=0.02)
    print("\nlabel-free integrals against the dense trapezoid rule (spacing 0.01 in whitened h; its change "
          "at spacing 0.02 in brackets): max relative difference (by the largest |reference| entry)")
    for name in sorted(ref):
        r = ref[name]
        scale = np.abs(r).max()
        d = np.asarray(terms_d[name], dtype=float).reshape(r.shape)
        m = np.asarray(f64(terms_m[name]), dtype=float).reshape(r.shape)
        print(f"{name:<8} double {np.abs(d - r).max() / scale:.2e}   mp {np.abs(m - r).max() / scale:.2e}   "
              f"[{np.abs(ref2[name] - r).max() / scale:.0e}]")
    if args.split_smooth:
        t0 = time.perf_counter()
        with mpmath.workdps(args.dps):
            split = named_terms(model, mp_state(st), rules=MpRules(args.mp_nodes, split_smooth=True))
        print(f"\nmp named integrals by the orthant split (split_smooth=True, {time.perf_counter() - t0:.0f} s): "
              "max relative difference to the double, to MC (|z|)")
        for name in sorted(terms_d):
            d = np.asarray(terms_d[name], dtype=float)
            m = np.asarray(f64(split[name]), dtype=float).reshape(d.shape)
            mc, se = mc_terms[name]
            print(f"{name:<8} vs double {np.abs(m - d).max() / np.abs(m).max():.2e}   vs MC "
                  f"{np.abs(m - mc).max() / np.abs(mc).max():.2e} (|z| {np.max(np.abs(m - mc) / se):5.1f})")
    if args.errors:
        ms = task_metrics(model, st, acc, loss=False)
        t0 = time.perf_counter()
        with mpmath.workdps(args.dps):
            em = task_metrics_mp(model, mp_state(st), args.mp_nodes, loss=False, processes=1)
        print(f"\ngen_error / label_error at t = {args.t:g} (mp {time.perf_counter() - t0:.0f} s), "
              f"Monte Carlo {args.n:.1e} samples")
        rng = np.random.default_rng(args.seed + 2)
        offs = np.concatenate([[0], np.cumsum(model.classes)])
        accs = [Acc() for _ in model.classes]
        for start in range(0, args.n, 500_000):
            m_ = min(500_000, args.n - start)
            h, lam, nu = fields.sample(rng, m_)
            g, _ = g_and_dg(model.activation, h)
            for t in range(len(model.classes)):
                zs = np.argmax(g @ st.V[t].T, axis=1)
                sl = slice(offs[t], offs[t + 1])
                accs[t].add(np.stack([zs != np.argmax(lam[:, sl], axis=1),
                                      zs != np.argmax(nu[:, sl], axis=1)], 1).astype(float))
        for t, (a, e) in enumerate(zip(ms, em)):
            mc, se = accs[t].result()
            print(f"task {t}: gen_error double {a.gen_error:.6f} mp {float(e[0]):.6f} MC {mc[0]:.6f} ± {se[0]:.6f};"
                  f"  label_error double {a.label_error:.6f} mp {float(e[1]):.6f} MC {mc[1]:.6f} ± {se[1]:.6f}")


if __name__ == "__main__":
    main()
