"""Runs the generated module of a setup structure: the derivation prints, the library runs.

A generated module (`derive.codegen`) evaluates expressions only: the closed forms of the label
terms, ``_closed_arrays(Q, R, V, T, σ)``, named ``CLOSED_NAMES``, and the assembly of the
equations of motion, ``_assemble(Q, R, V, T, σ, w, π, η, η_V, κ, terms)`` → (dQ/dt, dR/dt,
dV_t/dt …, test losses), printed from one SymPy system for NumPy (and, in the mp module, for
mpmath: ``_closed_arrays_mp``, ``_assemble_mp``).  This module takes those functions as data and
supplies the rest, once for every structure:

    terms = quadrature integrals (`online.linear_terms` / `online.nonlinear_terms`), renamed to
            the derivation's integral names (`flatten_terms`), overwritten by the closed forms
            where the label cones are nondegenerate (`closed_usable`);
    (dQ, dR, dV, losses) = _assemble(state, parameters, terms);
    dy/dt = pack(dQ, dR, dV)   (layout: `TheoryModel.pack`).
"""
from __future__ import annotations

import mpmath
import numpy as np

from mtsp.errors import RequestError

from .model import State, TheoryModel
from .online import Accuracy, linear_terms, nonlinear_terms
from .quadrature import gaussian_factor

__all__ = ["GeneratedSystem", "closed_usable", "flatten_terms", "mp_parameters", "closed_terms_mp",
           "assemble_mp", "generated_module"]


def generated_module(generated, model: TheoryModel, setup_name: str = "", backend: str = "numpy"):
    """The generated module of `model`'s structure, taken from `generated` — derive's output, given
    by the caller (`mtsp.derive.GENERATED`: ``numpy(model, name)``, ``mpmath(model, name)``); numeric
    never derives.  RequestError (key ``generated``) when none was given."""
    if generated is None:
        raise RequestError("generated", "the ode engine runs the generated module of the setup's structure, "
                           "which numeric receives from its caller: call mtsp.solve (it derives, then solves) "
                           "or pass generated=mtsp.derive.GENERATED")
    return getattr(generated, backend)(model, setup_name)


def flatten_terms(model: TheoryModel, raw: dict) -> dict:
    """`numeric.online`'s term dictionaries → the derivation's integral names (A0, L0, Eaa01, …)."""
    out = {}
    if model.linear:
        for t in range(model.n_tasks):
            out[f"A{t}"] = raw["A"][t]
            out[f"Lse{t}"] = float(raw["Lse"][t])
            out[f"P{t}"] = np.asarray(raw["P"][t]).reshape(-1, 1)
            out[f"L{t}"] = raw["L"][t]
        pair_terms = ("B", "Y", "PP")
    else:
        for t in range(model.n_tasks):
            for k in ("Eal", "Ebl", "Esg", "Eyg", "Ebb"):
                out[f"{k}{t}"] = raw[k][t]
            out[f"Lse{t}"] = float(raw["Lse"][t])
            out[f"Eyz{t}"] = float(raw["Eyz"][t])
        pair_terms = ("Eaa", "Eab", "Ebb2")
    for k in pair_terms:  # terms indexed by a pair of tasks
        for (t, s), v in raw[k].items():
            out[f"{k}{t}{s}"] = v
    return out


def closed_usable(model: TheoryModel) -> bool:
    """Whether the derivation's closed forms apply: every label cone nondegenerate, i.e. the
    class differences D (S_t + σ_t² I) Dᵀ of each task's teacher block have smallest eigenvalue
    above 1e-9 of the largest (σ_t > 0 or a full-rank class block of T)."""
    for t in range(model.n_tasks):
        sl = model.task_slice(t)
        C = model.classes[t]
        S = model.gram[sl, sl] + model.noise[t] ** 2 * np.eye(C)
        D = np.eye(C)[1:] - np.eye(C)[0]
        ev = np.linalg.eigvalsh(D @ S @ D.T)
        if ev[0] <= 1e-9 * max(ev[-1], 1e-300):
            return False
    return True


class GeneratedSystem:
    """The entry points of a generated NumPy module, bound to its printed functions.

    ``closed_arrays``/``closed_names``: the closed forms and their integral names; ``assemble``:
    the printed assembly.  Every entry point takes ``helper``, an executor for half of the
    quadrature (see `online.linear_terms`); the numbers do not depend on it."""

    def __init__(self, closed_names, closed_arrays, assemble):
        self.closed_names = list(closed_names)
        self.closed_arrays = closed_arrays
        self.assemble = assemble

    def integrals(self, model: TheoryModel, st: State, acc: Accuracy = Accuracy(), helper=None) -> dict:
        """All reduced integrals at state `st`: closed forms where derived and usable,
        quadrature otherwise."""
        factor = gaussian_factor(model.field_cov(st))
        raw = (linear_terms if model.linear else nonlinear_terms)(model, st, factor, acc, helper)
        flat = flatten_terms(model, raw)
        if self.closed_names and closed_usable(model):
            vals = self.closed_arrays(st.Q, st.R, st.V, model.gram, model.noise)
            flat.update(dict(zip(self.closed_names, vals)))
        return flat

    def rhs_state(self, model: TheoryModel, st: State, acc: Accuracy = Accuracy(), helper=None):
        """(dQ/dt, dR/dt, dV/dt, test losses) at order parameters `st`."""
        terms = self.integrals(model, st, acc, helper)
        outs = self.assemble(st.Q, st.R, st.V, model.gram, model.noise, model.weights, model.shares,
                             model.lr, model.head_lr, model.weight_decay, terms)
        n = model.n_tasks
        dV = tuple(outs[2:2 + n]) if model.train_heads else ()
        return outs[0], outs[1], dV, outs[-1]

    def rhs(self, model: TheoryModel, y: np.ndarray, acc: Accuracy = Accuracy(), helper=None) -> np.ndarray:
        """Packed right-hand side dy/dt for ODE integrators (layout: `TheoryModel.pack`)."""
        st = model.unpack(y)
        dQ, dR, dV, _ = self.rhs_state(model, st, acc, helper)
        return model.pack(State(dQ, dR, dV if model.train_heads else st.V))


# ---- the mpmath twins: the generated mp module's printed functions, run at mpmath's precision

def mp_parameters(model: TheoryModel) -> tuple:
    """(T, σ, w, π, η, η_V, κ) as mpmath numbers (the exact values of the doubles)."""
    def vec(a):
        return [mpmath.mpf(float(x)) for x in np.ravel(a)]
    T = mpmath.matrix([[mpmath.mpf(float(x)) for x in row] for row in np.asarray(model.gram)])
    return (T, vec(model.noise), vec(model.weights), vec(model.shares),
            mpmath.mpf(model.lr), mpmath.mpf(model.head_lr), mpmath.mpf(model.weight_decay))


def closed_terms_mp(gen_mp, model: TheoryModel, st) -> dict:
    """The generated mp module's closed forms at the mp state `st` ({} where not usable)."""
    if not gen_mp.CLOSED_NAMES or not closed_usable(model):
        return {}
    T, sigma = mp_parameters(model)[:2]
    return dict(zip(gen_mp.CLOSED_NAMES, gen_mp._closed_arrays_mp(st.Q, st.R, st.V, T, sigma)))


def assemble_mp(gen_mp, model: TheoryModel, st, terms: dict):
    """(dQ, dR, dV, test losses) in mp from the generated mp assembly and the integrals."""
    T, sigma, w, pi, eta, eta_v, kappa = mp_parameters(model)
    V = st.V if model.train_heads else tuple(st.V)
    outs = gen_mp._assemble_mp(st.Q, st.R, V, T, sigma, w, pi, eta, eta_v, kappa, terms)
    n = model.n_tasks
    dV = tuple(outs[2:2 + n]) if model.train_heads else ()
    return outs[0], outs[1], dV, outs[-1]
