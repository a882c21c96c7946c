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

The same steps serve both number types: ``rules`` (`online.DoubleRules`, or `mp_online.MpRules`
with the mp module's functions, `generated_system`) supplies the quadrature and the conversion of
the model's parameters (`parameters`).
"""
from __future__ import annotations

import numpy as np

from mtsp.errors import RequestError

from .model import State, TheoryModel
from .online import DOUBLE_RULES, Accuracy

__all__ = ["GeneratedSystem", "closed_usable", "flatten_terms", "named_terms", "parameters", "generated_module",
           "generated_system"]


def generated_module(generated, model: TheoryModel, setup_name: str = "", backend: str = "numpy"):
    """The generated module of `model`'s structure, taken from `generated` — derive's output, given
    by the caller (`mtsp.derive.GENERATED`: ``numpy(model, name)``, ``mpmath(model, name)``); numeric
    never derives.  RequestError (key ``generated``) when none was given."""
    if generated is None:
        raise RequestError("generated", "the ode engine runs the generated module of the setup's structure, "
                           "which numeric receives from its caller: call mtsp.solve (it derives, then solves) "
                           "or pass generated=mtsp.derive.GENERATED")
    return getattr(generated, backend)(model, setup_name)


def flatten_terms(model: TheoryModel, raw: dict, scalar=float) -> dict:
    """`numeric.online`'s term dictionaries → the derivation's integral names (A0, L0, Eaa01, …)."""
    out = {}
    if model.linear:
        for t in range(model.n_tasks):
            out[f"A{t}"] = raw["A"][t]
            out[f"Lse{t}"] = scalar(raw["Lse"][t])
            out[f"P{t}"] = np.asarray(raw["P"][t]).reshape(-1, 1)
            out[f"L{t}"] = raw["L"][t]
        pair_terms = ("B", "Y", "PP")
    else:
        for t in range(model.n_tasks):
            for k in ("Eal", "Ebl", "Esg", "Eyg", "Ebb"):
                out[f"{k}{t}"] = raw[k][t]
            out[f"Lse{t}"] = scalar(raw["Lse"][t])
            out[f"Eyz{t}"] = scalar(raw["Eyz"][t])
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
    """The entry points of a generated module, bound to its printed functions, in the number type
    of ``rules`` (`online.DoubleRules`, float64, the default; `mp_online.MpRules`, object arrays of mpf).

    ``closed_arrays``/``closed_names``: the closed forms and their integral names; ``assemble``:
    the printed assembly.  Every entry point takes ``helper``, an executor for half of the
    quadrature (see `online.linear_terms`); the numbers do not depend on it."""

    def __init__(self, closed_names, closed_arrays, assemble):
        self.closed_names = list(closed_names)
        self.closed_arrays = closed_arrays
        self.assemble = assemble

    def integrals(self, model: TheoryModel, st: State, acc: Accuracy = Accuracy(), helper=None,
                  rules=DOUBLE_RULES) -> dict:
        """All reduced integrals at state `st`: closed forms where derived and usable,
        quadrature otherwise."""
        flat = named_terms(model, st, acc, helper, rules)
        if self.closed_names and closed_usable(model):
            vals = self.closed_arrays(st.Q, st.R, st.V, *parameters(model, rules)[:2])
            flat.update(dict(zip(self.closed_names, vals)))
        return flat

    def rhs_state(self, model: TheoryModel, st: State, acc: Accuracy = Accuracy(), helper=None, rules=DOUBLE_RULES,
                  terms: dict | None = None):
        """(dQ/dt, dR/dt, dV/dt, test losses) at order parameters `st` (from ``terms``, its `integrals`, if given)."""
        terms = self.integrals(model, st, acc, helper, rules) if terms is None else terms
        outs = [rules.lift(x) for x in self.assemble(st.Q, st.R, st.V, *parameters(model, rules), terms)]
        n = model.n_tasks
        dV = tuple(outs[2:2 + n]) if model.train_heads else ()
        return outs[0], outs[1], dV, outs[-1]

    def rhs(self, model: TheoryModel, y, acc: Accuracy = Accuracy(), helper=None, rules=DOUBLE_RULES):
        """Packed right-hand side dy/dt for ODE integrators (layout: `TheoryModel.pack`)."""
        st = model.unpack(y).map(rules.lift)
        dQ, dR, dV, _ = self.rhs_state(model, st, acc, helper, rules)
        return model.pack(State(dQ, dR, dV if model.train_heads else st.V))


def named_terms(model: TheoryModel, st: State, acc: Accuracy = Accuracy(), helper=None, rules=DOUBLE_RULES) -> dict:
    """The quadrature integrals at `st` under the derivation's names, in the number type of ``rules``."""
    factor = rules.factor(model.field_cov(st, rules.lift))
    return flatten_terms(model, rules.terms(model, st, factor, acc, helper), rules.scalar)


def parameters(model: TheoryModel, rules=DOUBLE_RULES) -> tuple:
    """(T, σ, w, π, η, η_V, κ) in the number type of ``rules`` (exact conversions of the doubles)."""
    return (*(rules.lift(a) for a in (model.gram, model.noise, model.weights, model.shares)),
            *(rules.scalar(x) for x in (model.lr, model.head_lr, model.weight_decay)))


def generated_system(generated, model: TheoryModel, setup_name: str = "", backend: str = "numpy") -> GeneratedSystem:
    """The `GeneratedSystem` of `model`'s structure from ``generated`` (`generated_module`): the NumPy
    module's ``SYSTEM``, or the mp module's twins (``_closed_arrays_mp``, ``_assemble_mp``)."""
    mod = generated_module(generated, model, setup_name, backend)
    return mod.SYSTEM if backend == "numpy" else GeneratedSystem(mod.CLOSED_NAMES, mod._closed_arrays_mp, mod._assemble_mp)
