"""The equation sheet: a Markdown + LaTeX account of a derived system that a theorist can check."""
from __future__ import annotations

import sympy as sp

from .system import OnlineSystem

__all__ = ["equation_sheet"]

_MAX_ENTRIES = 12  # explicit element-wise equations are printed for systems up to this size


_MAX_SIMPLIFY_OPS = 60  # closed forms with more operations are printed as derived (not simplified)


def _tex(e) -> str:
    return sp.latex(e)


def _shown(e):
    """`e` simplified where that is cheap (at most `_MAX_SIMPLIFY_OPS` operations: SymPy's simplify
    has no bound on its work — a four-class closed form ran for 15 min), else as derived."""
    return sp.simplify(e) if sp.count_ops(e) <= _MAX_SIMPLIFY_OPS else e


def equation_sheet(s: OnlineSystem, setup_name: str = "", model=None) -> str:
    K, M = s.K, s.M
    kind = "glm (frozen identity heads, K = M)" if not s.train_heads else "shared trunk"
    act = "linear" if s.linear else s.key[3]
    out = [f"# Online-SGD order-parameter equations — {setup_name or 'setup'}", "",
           f"Structure: `{s.key!r}` — {kind}, activation {act}, K = {K}, M = {M}, "
           f"tasks with C = {list(s.classes)}, {s.inputs} inputs.", "",
           "## Order parameters and fields", "",
           r"$Q = WW^\top/N \in \mathbb{R}^{K\times K}$, $R = WB^\top/N \in \mathbb{R}^{K\times M}$"
           + (r", heads $V_t \in \mathbb{R}^{C_t\times K}$" if s.train_heads else "")
           + r"; teacher Gram $T$, label noise $\sigma_t$. One sample's fields $(h, \lambda, \nu)$,"
           r" $\nu_t = \lambda_t + \sigma_t \xi_t$, are jointly Gaussian with covariance", "",
           r"$$\mathrm{Cov}(h,\lambda,\nu) = \begin{pmatrix} Q & R & R\\ R^\top & T & T\\ R^\top & T & "
           r"T + \mathrm{diag}(\sigma^2)\end{pmatrix}.$$", "",
           r"Labels: $y_t = c \iff \nu_{t,c} - \nu_{t,j} > 0\ \forall j \neq c$ (a cone). "
           r"Student: $z_t = V_t\, g(h)$, $s_t = \mathrm{softmax}(z_t)$, "
           r"$a_t = g'(h)\odot V_t^\top s_t$, $b_{t,c} = g'(h)\odot V_t[c]$, "
           r"$\delta = \sum_t w_t (a_t - b_{t,y_t})$.", "",
           "## Equations of motion", "",
           r"$$\frac{dR}{dt} = -\eta \sum_t c_t\, m^{(1)}_t[:, \lambda] - \eta\kappa R,\qquad "
           r"\frac{dQ}{dt} = -\eta \sum_t c_t \big(m^{(1)}_t[:, h] + m^{(1)\top}_t[:, h]\big) + \eta^2 D"
           r" - 2\eta\kappa Q$$", "",
           (r"$$\frac{dV_t}{dt} = -\eta_V\, c_t\, E[(s_t - e_{y_t})\, g(h)^\top]$$" if s.train_heads else ""),
           "",
           r"with $m^{(1)}_t = E[(a_t - b_{t,y_t})\,\ell^\top]$, $\ell = (h, \lambda)$, "
           + (r"$c_t = w_t$ and $D = \sum_{t,s} w_t w_s E[(a_t - b_{t,y_t})(a_s - b_{s,y_s})^\top]$ "
              r"(shared inputs: every sample carries every label)."
              if s.inputs == "shared" else
              r"$c_t = \pi_t w_t$ and $D = \sum_t \pi_t w_t^2 E[(a_t - b_{t,y_t})(a_t - b_{t,y_t})^\top]$"
              r" (separate inputs: a sample carries one task's label)."), ""]
    if s.linear:
        out += ["For a linear trunk $a_t = V_t^\\top s_t$ and $b_{t,c} = V_t[c]$ do not depend on $h$, so",
                "", r"$$m^{(1)}_t = V_t^\top (A_t - L_t),\quad "
                r"D_{tt} = V_t^\top\big(B_{tt} - Y_{tt}^\top - Y_{tt} + \mathrm{diag}\,P_t\big)V_t,\quad "
                r"D_{ts} = V_t^\top\big(B_{ts} - Y_{st}^\top - Y_{ts} + P_{ts}\big)V_s$$", "",
                r"and the test loss is $E[\mathrm{CE}_t] = \mathrm{Lse}_t - \sum_c (V_t[c] - V_t[0])\cdot "
                r"L_t[c, h]$.", ""]
    out += ["## Reduced integrals (evaluated by quadrature)", "",
            "Each is reduced before integration: variables entering linearly are replaced by their "
            "Gaussian conditional means, the softmax depends only on the C − 1 logit differences "
            "(shift invariance), labels are cones integrated by the Genz transform — or, given the "
            "fields the rest of the integrand depends on, closed forms P(y = c | ·) (Φ, or the "
            "bivariate Φ₂ for three classes), so that the label cones are not integrated at all. "
            "'dim' is the dimension actually integrated.", "",
            "| symbol | definition | dim |", "|---|---|---|"]
    for name, (mat, desc, dim) in s.integrals.items():
        out.append(f"| ${name}$ ({mat.shape[0]}×{mat.shape[1]}) | ${desc}$ | {dim} |")
    if s.closed:
        out += ["", "## Closed forms (derived)", "",
                r"Orthant probabilities of zero-mean Gaussians ($\frac14 + \frac{\arcsin\rho}{2\pi}$, "
                r"$\frac18 + \sum\frac{\arcsin\rho_{ij}}{4\pi}$) and Stein's lemma "
                r"$E[1\{u>0\}\ell] = \sum_j \mathrm{Cov}(\ell,u_j)\,\frac{P(u_{-j}>0\mid u_j=0)}"
                r"{\sqrt{2\pi S_{jj}}}$ close the label terms:", ""]
        for name, (mat, expr) in s.closed.items():
            rows = min(expr.shape[0], 1)
            for i in range(rows):
                for j in range(min(expr.shape[1], 2)):
                    out.append(f"$$\\mathrm{{{name}}}_{{{i},{j}}} = {_tex(_shown(expr[i, j]))}$$")
                    out.append("")
            out.append(f"({name} has {expr.shape[0]}×{expr.shape[1]} entries; the others follow by "
                       "permuting classes and fields. All are in the generated module.)")
            out.append("")
    out += _integrand_section(s)
    if K * M <= _MAX_ENTRIES:
        out += ["## Element-wise equations", ""]
        entries = [(i, j) for i in range(K) for j in range(M)]
    else:   # a large structure: the generic equations above and a sample of entries
        out += ["## Element-wise equations (a sample)", "",
                f"dR has {K}×{M} entries; entry (0, 0) is shown, the others follow the generic "
                "equations above (all are in the generated module).", ""]
        entries = [(0, 0)]
    for i, j in entries:
        out.append(f"$$\\frac{{dR_{{{i}{j}}}}}{{dt}} = {_tex(s.dR[i, j])}$$")
        out.append("")
    return "\n".join(x for x in out if x is not None)


_MAX_TEX = 600  # integrand entries longer than this (LaTeX characters) are not printed


def _integrand_section(s: OnlineSystem) -> list:
    """The derived integrands (`derive.integrands`) — what the mp back-end evaluates at each node —
    entry (0, 0) of each named integral, where short enough to read."""
    from .integrands import linear_integrands, nonlinear_integrands
    out = ["## Integrands (derived; evaluated node by node by the mp back-end)", ""]
    if s.linear:
        out += [r"Over the logit differences $u$ of one task (or two): $s = \mathrm{softmax}(0, u)$, "
                r"$\mathrm{lse} = \log(1 + \sum_c e^{u_c})$; $p_c$ are label probabilities in closed form.", ""]
        items = [(name, plain[0]) for name, (plain, _) in linear_integrands(s).items()]
    else:
        out += [r"Over the trunk fields $h$, with $z_{t} = V_t g$, $\mathrm{lse}_t = \log\sum_c e^{z_{t,c}}$, "
                r"$s_{t} = \mathrm{softmax}(z_t)$, $a_{t,k} = dg_k \sum_c s_{t,c} V_{t,c,k}$ "
                r"(primitives: $g_k = g(h_k)$, $dg_k = g'(h_k)$, "
                r"$p_{t,c} = P(y_t = c \mid h)$, Stein vectors $v_{t,c}$, conditioning coefficients "
                r"$A^{\lambda}$, $Cl$; $q_c = P(y_a = c \mid h, \nu_b - \nu_{b,0})$ in the label–label "
                r"term).", ""]
        it = nonlinear_integrands(s, display=True)
        items = list(it.plain) + [(f"{n}\\ (\\times \\ell^\\top)", m) for n, m in it.linear] \
            + [(f"Ebb2_{{{a}{b}}}\\ (y_{b} = {d})", m) for (a, b, d), m in sorted(it.label_label.items())]
    for name, m in items:
        tex = sp.latex(m[0, 0])
        out.append(f"$$\\mathrm{{{name}}}_{{0,0}}:\\quad {tex}$$" if len(tex) <= _MAX_TEX else
                   f"- {name}: entry (0, 0) has {len(tex)} LaTeX characters (see the mp module).")
        out.append("")
    return out
