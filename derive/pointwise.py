"""Pointwise formulas of the integrands, stated once in SymPy and printed to two back-ends.

Every reduced integral of the online engine integrates, node by node, a few closed formulas:
the trunk activation and its derivative, the activation's inverse (the student's tie curves of
the error cuts), and the Gaussian cone probabilities of the labels given the trunk fields with
their Stein vectors.  They are defined here, once, as SymPy expressions; `render(backend)` prints
them (after common-subexpression elimination) as a NumPy/SciPy module, vectorised over arrays,
or an mpmath module, at the working precision.  The two printed modules are committed as
``numeric/pointwise.py`` and ``numeric/mp_pointwise.py``; the double kernels (`activations`,
`online`, `metrics`) and the mp kernels (`mp_online`, `independent_checks`) both call
them, so a formula cannot differ between the back-ends.  Regenerate after editing a formula:

    python -m mtsp.derive.pointwise

(`tests/test_pointwise.py` fails while a committed module differs from its rendering.)

Formulas
--------
Activations (MODEL.md), g′ = dg/dh by `sympy.diff` (relu: the Heaviside step with H(0) = 0):

    linear  g = h            relu  g = max(h, 0)
    erf     g = erf(h/√2)    tanh  g = tanh h

Inverses on g's open range (checked symbolically: g(g⁻¹(x)) = x): relu x (x > 0),
erf √2·erfinv x, tanh atanh x (|x| < 1).

Cones given a mean (u ~ N(μ, S), dimension 1 or 2; Φ the normal CDF, Φ₂ the bivariate one):

    P(u > 0) = Φ(μ₀/s₀)                          s_j = √S_jj
             = Φ₂(μ₀/s₀, μ₁/s₁; S₀₁/(s₀s₁))
    E[1{u > 0}(u − μ)] = S v,   v_j = φ(μ_j/s_j)/s_j · P(u_k > 0 | u_j = 0)
                                    = φ(μ_j/s_j)/s_j · Φ((μ_k − S_kj μ_j/S_jj)/√(S_kk − S_kj²/S_jj))
"""
from __future__ import annotations

import importlib.util
import os

import sympy as sp
from sympy.printing.numpy import SciPyPrinter
from sympy.printing.pycode import MpmathPrinter

from ..errors import RequestError

__all__ = ["Phi", "Phi2", "activation_formulas", "inverse_formulas", "cone_formulas", "render",
           "module_paths", "write_modules"]


class Phi(sp.Function):
    """Standard normal CDF Φ(x) (printed as scipy's ndtr / the mp kernel's ncdf: accurate in the
    far tails, where (1 + erf(x/√2))/2 cancels)."""
    nargs = 1

    def fdiff(self, argindex=1):
        x = self.args[0]
        return sp.exp(-x ** 2 / 2) / sp.sqrt(2 * sp.pi)


class Phi2(sp.Function):
    """Bivariate standard normal CDF Φ₂(a, b; ρ) (printed as each back-end's kernel)."""
    nargs = 3


_h = sp.Symbol("h", real=True)
_x = sp.Symbol("x", real=True)


def activation_formulas() -> dict:
    """name → (g(h), g′(h)) as SymPy expressions in the symbol h."""
    gs = {"linear": _h, "relu": sp.Max(_h, 0), "erf": sp.erf(_h / sp.sqrt(2)), "tanh": sp.tanh(_h)}
    out = {}
    for name, g in gs.items():
        dg = sp.diff(g, _h).replace(sp.Heaviside, lambda *a: sp.Heaviside(a[0], 0))
        out[name] = (g, sp.simplify(dg) if name != "tanh" else dg)
    return out


def inverse_formulas() -> dict:
    """name → g⁻¹(x) on g's open range (relu: x > 0; erf, tanh: |x| < 1)."""
    return {"relu": _x, "erf": sp.sqrt(2) * sp.erfinv(_x), "tanh": sp.atanh(_x)}


def _phi(z):
    return sp.exp(-z ** 2 / 2) / sp.sqrt(2 * sp.pi)


def cone_formulas() -> dict:
    """name → (arguments, outputs): P(u > 0) and the Stein vector v for u ~ N(μ, S), dim 1, 2."""
    mu0, mu1 = sp.symbols("mu0 mu1", real=True)
    S00, S11 = sp.symbols("S00 S11", positive=True)
    S01 = sp.Symbol("S01", real=True)
    s0, s1 = sp.sqrt(S00), sp.sqrt(S11)
    z0, z1 = mu0 / s0, mu1 / s1
    S = {(0, 0): S00, (0, 1): S01, (1, 0): S01, (1, 1): S11}
    mu, sd, z = (mu0, mu1), (s0, s1), (z0, z1)

    def stein2(j, k):
        cond_mean = mu[k] - S[k, j] * mu[j] / S[j, j]
        cond_sd = sp.sqrt(S[k, k] - S[k, j] ** 2 / S[j, j])
        return _phi(z[j]) / sd[j] * Phi(cond_mean / cond_sd)
    return {
        "cone1_probability": ((mu0, S00), [Phi(z0)]),
        "cone1_stein": ((mu0, S00), [_phi(z0) / s0]),
        "cone2_probability": ((mu0, mu1, S00, S01, S11), [Phi2(z0, z1, S01 / (s0 * s1))]),
        "cone2_stein": ((mu0, mu1, S00, S01, S11), [stein2(0, 1), stein2(1, 0)]),
    }


class _NumpyPrinter(SciPyPrinter):
    """SciPy printer with the kernel's names: Φ → ndtr, Φ₂ → bivariate_cdf(DOUBLE, …), max(h, 0) →
    numpy.maximum, the Heaviside step H(h), H(0) = 0 → (h > 0) as float, erfinv → scipy's."""

    def _print_Phi(self, e):
        return f"ndtr({self._print(e.args[0])})"

    def _print_Phi2(self, e):
        return "bivariate_cdf(DOUBLE, {})".format(", ".join(self._print(a) for a in e.args))

    def _print_Max(self, e):
        a, b = e.args
        return f"numpy.maximum({self._print(a)}, {self._print(b)})"

    def _print_Heaviside(self, e):
        return f"numpy.greater({self._print(e.args[0])}, 0).astype(float)"

    def _print_erfinv(self, e):
        return f"scipy.special.erfinv({self._print(e.args[0])})"

    def _print_Pi(self, e):
        return "numpy.pi"


class _MpPrinter(MpmathPrinter):
    """mpmath printer with the mp kernel's names: Φ → ncdf, Φ₂ → bivariate_cdf(MP, …)."""

    def _print_Phi(self, e):
        return f"ncdf({self._print(e.args[0])})"

    def _print_Phi2(self, e):
        return "bivariate_cdf(MP, {})".format(", ".join(self._print(a) for a in e.args))

    def _print_Max(self, e):
        a, b = (f"mpmath.mpf({int(x)})" if x.is_Integer else self._print(x) for x in e.args)
        return f"({a} if {a} > {b} else {b})"

    def _print_Heaviside(self, e):
        a = self._print(e.args[0])
        return f"(mpmath.mpf(1) if {a} > 0 else mpmath.mpf(0))"

    def _print_erfinv(self, e):
        return f"mpmath.erfinv({self._print(e.args[0])})"


def _printed_function(name, args, outputs, doc, backend) -> str:
    printer = (_NumpyPrinter if backend == "numpy" else _MpPrinter)({"inline": True, "strict": True})
    reps, reduced = sp.cse(list(outputs), symbols=sp.numbered_symbols("t"), order="canonical")
    lines = [f"def {name}({', '.join(str(a) for a in args)}):", f'    """{doc}"""']
    for sym, expr in reps:
        lines.append(f"    {sym} = {printer.doprint(expr)}")
    vals = []
    for e in reduced:
        v = printer.doprint(e)
        if not e.free_symbols:   # constant output: an array of the argument's shape (numpy) / an mpf
            v = f"numpy.full_like({args[0]}, {v}, dtype=float)" if backend == "numpy" else f"mpmath.mpf({v})"
        vals.append(v)
    lines.append(f"    return {', '.join(vals)}" if len(vals) > 1 else f"    return {vals[0]}")
    return "\n".join(lines)


_HEADER = '''"""{title} — GENERATED by mtsp.derive.pointwise (mtsp {version}); do not edit.

Printed by {printer} from the SymPy formulas of `mtsp.derive.pointwise` (see its docstring);
regenerate with ``python -m mtsp.derive.pointwise``.  {note}
"""
'''

_IMPORTS = {
    "numpy": "import numpy\nimport scipy.special\nfrom scipy.special import ndtr\n\n"
             "from .bivariate import bivariate_cdf\nfrom .cone import DOUBLE\n",
    "mpmath": "import mpmath\n\nfrom .bivariate import bivariate_cdf\nfrom .cone import MP\nfrom .mp_quadrature import ncdf\n",
}


def render(backend: str) -> str:
    """Source of the generated module for `backend` ("numpy" or "mpmath"); deterministic."""
    from .. import __version__
    if backend not in _IMPORTS:
        raise RequestError("backend", f"{backend!r} is not one of 'numpy', 'mpmath'")
    title = ("Pointwise formulas of the integrands, NumPy back-end (vectorised over arrays)"
             if backend == "numpy" else "Pointwise formulas of the integrands, mpmath back-end")
    note = ("Functions broadcast over NumPy arrays; the cone functions take a scalar covariance."
            if backend == "numpy" else "Arguments and results are mpf numbers.")
    parts = [_HEADER.format(title=title, version=__version__, note=note,
                            printer="a SciPy printer" if backend == "numpy" else "an mpmath printer"),
             _IMPORTS[backend]]
    acts = activation_formulas()
    for name in sorted(acts):
        g, dg = acts[name]
        parts.append(_printed_function(f"g_{name}", (_h,), [g, dg], f"(g(h), g′(h)) for g(h) = {g}.", backend))
    invs = inverse_formulas()
    for name in sorted(invs):
        parts.append(_printed_function(f"g_inverse_{name}", (_x,), [invs[name]],
                                       f"g⁻¹(x) = {invs[name]} on the open range of g = {name}.", backend))
    docs = {"cone1_probability": "P(u > 0) for u ~ N(mu0, S00).",
            "cone1_stein": "v₀ = φ(μ₀/s₀)/s₀: E[1{u > 0}(u − μ)] = S v for u ~ N(mu0, S00).",
            "cone2_probability": "P(u > 0) = Φ₂(μ₀/s₀, μ₁/s₁; ρ) for u ~ N(μ, S) of dimension 2.",
            "cone2_stein": "(v₀, v₁), v_j = φ(μ_j/s_j)/s_j · P(u_k > 0 | u_j = 0): E[1{u > 0}(u − μ)] = S v."}
    for name, (args, outs) in cone_formulas().items():
        parts.append(_printed_function(name, args, outs, docs[name], backend))
    names = [f"g_{n}" for n in sorted(acts)] + [f"g_inverse_{n}" for n in sorted(invs)] \
        + list(cone_formulas()) + ["ACTIVATION_PAIRS", "ACTIVATION_INVERSES"]
    text = parts[0] + "from __future__ import annotations\n\n" + parts[1] + "\n__all__ = " + repr(names) \
        + "\n\n\n" + "\n\n\n".join(parts[2:]) + "\n\n\nACTIVATION_PAIRS = {" \
        + ", ".join(f'"{n}": g_{n}' for n in sorted(acts)) + "}\nACTIVATION_INVERSES = {" \
        + ", ".join(f'"{n}": g_inverse_{n}' for n in sorted(invs)) + "}\n"
    return text


def module_paths() -> dict:
    """backend → path of the committed generated module."""

    # the folder of the numeric package, found without importing it (derive does not import numeric)
    here = importlib.util.find_spec("mtsp.numeric").submodule_search_locations[0]
    return {"numpy": os.path.join(here, "pointwise.py"), "mpmath": os.path.join(here, "mp_pointwise.py")}


def write_modules() -> list:
    """Write both generated modules; returns their paths."""
    out = []
    for backend, path in module_paths().items():
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(render(backend))
        out.append(path)
    return out


if __name__ == "__main__":
    for p in write_modules():
        print("wrote", p)
