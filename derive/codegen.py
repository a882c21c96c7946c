"""Code generation: a standalone NumPy module for one structure of setup (the PyDy pattern).

The module is self-contained — it imports only numpy, scipy and math — and consists of

1. the numerical kernel (mtsp.numeric: activations, quadrature, model, online integrals and
   metrics), copied verbatim so that the file runs without mtsp installed;
2. `closed_terms(...)`: the closed forms of the derivation (Stein / orthant label terms),
   printed from SymPy after common-subexpression elimination;
3. `assemble(...)`: dQ/dt, dR/dt, dV_t/dt and the test loss as explicit expressions in the order
   parameters and the reduced integrals (CSE'd);
4. `rhs(model, y)` / `rhs_state(model, state)` / `task_metrics(model, state)`: the entry points.

Generated files are deterministic (byte-identical for the same structure) and carry a header
naming the setup structure and the generator version.  `load_module(model)` caches modules in
memory and on disk (``$MTSP_CACHE_DIR`` or ``~/.cache/mtsp``) keyed by the structure, so a second
solve of any setup with the same structure does not derive again.
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import re
import sys

from .. import __version__
from .structure import structure_key  # SymPy is imported only when a module is generated

__all__ = ["generate_module", "load_module", "module_path", "cache_dir", "generate_mp_module", "load_mp_module"]

_KERNEL_MODULES = ("bivariate", "pointwise", "activations", "sobol_directions", "sobol", "quadrature", "model", "online", "tie_cuts", "metrics")


def _kernel_source() -> str:
    """Sources of mtsp.numeric's kernel modules, relative imports stripped."""
    from importlib import import_module
    parts = []
    for name in _KERNEL_MODULES:
        mod = import_module(f"mtsp.numeric.{name}")
        src = inspect.getsource(mod)
        lines = []
        closer = None
        for line in src.splitlines():
            if closer:
                if line.rstrip().endswith(closer):
                    closer = None
                continue
            if line.startswith("from __future__"):
                continue
            if line.startswith("__all__"):
                closer = None if line.rstrip().endswith("]") else "]"
                continue
            if re.match(r"from \.\w+ import", line):
                closer = ")" if ("(" in line and ")" not in line) else None
                continue
            lines.append(line)
        parts.append(f"# {'=' * 20} kernel: mtsp.numeric.{name} {'=' * 20}\n" + "\n".join(lines))
    return "\n\n".join(parts)


_ACCESS = [
    (re.compile(r"^(Q|R|T)_(\d+)_(\d+)$"), lambda m: f"{m[1]}[{m[2]}, {m[3]}]"),
    (re.compile(r"^V(\d+)_(\d+)_(\d+)$"), lambda m: f"V[{m[1]}][{m[2]}, {m[3]}]"),
    (re.compile(r"^(sigma|w|pi)_(\d+)$"), lambda m: f"{m[1]}[{m[2]}]"),
    (re.compile(r"^(eta|eta_V|kappa)$"), lambda m: f"{m[1]}"),
    (re.compile(r"^([A-Za-z]+\d+)_(\d+)_(\d+)$"), lambda m: f'terms["{m[1]}"][{m[2]}, {m[3]}]'),
    (re.compile(r"^([A-Za-z]+\d+)$"), lambda m: f'terms["{m[1]}"]'),
]


def _access(sym, table=None) -> str:
    """The array access printed for a SymPy symbol, by the first pattern of `table` (default
    `_ACCESS`: order parameters, parameters, reduced integrals) that matches its name."""
    for rx, f in (_ACCESS if table is None else table):
        m = rx.match(sym.name)
        if m:
            return f(m)
    raise ValueError(f"no array access for symbol {sym}")


def _cse_body(flat: list, printer, table=None) -> tuple[list, list]:
    """(lines, values): the CSE of `flat` printed as local assignments — the free symbols read
    from their arrays, then the common subexpressions — and the printed reduced outputs."""
    import sympy as sp
    replacements, reduced = sp.cse(flat, symbols=sp.numbered_symbols("x"), order="canonical")
    free = sorted(set().union(*[e.free_symbols for e in flat]) if flat else set(), key=lambda s: s.name)
    lines = [f"    {printer.doprint(s)} = {_access(s, table)}" for s in free]
    lines += [f"    {printer.doprint(sym)} = {printer.doprint(expr)}" for sym, expr in replacements]
    return lines, reduced


def _function(name: str, args: str, doc: str, outputs: list, shapes: list,
              backend: str = "numpy") -> str:
    """A Python function computing `outputs` (SymPy matrices) with CSE; returns a tuple.

    backend "numpy": NumPyPrinter, outputs float arrays of `shapes`; "mpmath": MpmathPrinter
    (inputs mpmath matrices / mpf, every constant an exact mpf), outputs mpmath matrices (lists
    for 1-d shapes).  The same SymPy expressions feed both: one system, two printers."""
    import sympy as sp
    if backend == "numpy":
        from sympy.printing.numpy import NumPyPrinter as Printer
    else:
        from sympy.printing.pycode import MpmathPrinter as Printer
    printer = Printer({"inline": True})
    body, reduced = _cse_body([e for m in outputs for e in m], printer)
    lines = [f"def {name}({args}):", f'    """{doc}"""'] + body
    pos = 0
    outs = []
    for k, (m, shape) in enumerate(zip(outputs, shapes)):
        n = len(m)
        vals = [printer.doprint(e) for e in reduced[pos:pos + n]]
        pos += n
        if backend == "numpy":
            lines.append(f"    out{k} = np.array([{', '.join(vals)}], dtype=float).reshape({shape})")
        elif len(shape) == 1:
            lines.append(f"    out{k} = [{', '.join(vals)}]")
        else:
            r, c = shape
            rows = ", ".join("[" + ", ".join(vals[i * c:(i + 1) * c]) + "]" for i in range(r))
            lines.append(f"    out{k} = mpmath.matrix([{rows}])")
        outs.append(f"out{k}")
    lines.append(f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
    return "\n".join(lines)


def _derived_functions(s, backend: str = "numpy", suffix: str = "") -> tuple[str, str]:
    """Sources of `_closed_arrays{suffix}` (the closed forms of the label terms) and
    `_assemble{suffix}` (dQ/dt, dR/dt, dV_t/dt, test losses from the reduced integrals), printed
    from the SymPy system `s` by the `backend` printer."""
    import sympy as sp
    n, K, M = len(s.classes), s.K, s.M
    args = "Q, R, V, T, sigma"
    closed_names = sorted(s.closed)
    if closed_names:
        closed = _function(f"_closed_arrays{suffix}", args,
                           "Closed forms (Stein's lemma, orthant probabilities) of the label terms.",
                           [s.closed[k][1] for k in closed_names],
                           [tuple(s.closed[k][1].shape) for k in closed_names], backend)
    else:
        closed = f"def _closed_arrays{suffix}({args}):\n    return ()"
    outs = [s.dQ, s.dR] + list(s.dV) + [sp.Matrix(s.loss)]
    shapes = [(K, K), (K, M)] + [(c, K) for c in s.classes] * (1 if s.train_heads else 0) + [(n,)]
    assemble = _function(
        f"_assemble{suffix}", "Q, R, V, T, sigma, w, pi, eta, eta_V, kappa, terms",
        "dQ/dt, dR/dt, dV_t/dt (trained heads) and the test losses, from the reduced integrals.",
        outs, shapes, backend)
    return closed, assemble


def _generated_part(s) -> str:
    closed, assemble = _derived_functions(s)
    return "\n\n\n".join([closed, f"CLOSED_NAMES = {sorted(s.closed)!r}", assemble])


_ENTRY = '''

# ==================== entry points ====================
def _flatten_terms(model, raw):
    """numeric.online term dictionaries -> the derivation's integral names."""
    out = {}
    T = model.n_tasks
    if model.linear:
        for t in range(T):
            out[f"A{t}"] = raw["A"][t]
            out[f"Lse{t}"] = float(raw["Lse"][t])
            out[f"P{t}"] = np.asarray(raw["P"][t]).reshape(-1, 1)
            out[f"L{t}"] = raw["L"][t]
        pair_terms = ("B", "Y", "PP")
    else:
        for t in range(T):
            for k in ("Eal", "Ebl", "Esg", "Eyg", "Ebb"):
                out[f"{k}{t}"] = raw[k][t]
            out[f"Lse{t}"] = float(raw["Lse"][t])
            out[f"Eyz{t}"] = float(raw["Eyz"][t])
        pair_terms = ("Eaa", "Eab", "Ebb2")
    for k in pair_terms:  # terms indexed by a pair of tasks
        for (t, s), v in raw[k].items():
            out[f"{k}{t}{s}"] = v
    return out


def _closed_usable(model):
    """Closed forms need nondegenerate label cones (σ > 0 or a full-rank class block of T)."""
    for t in range(model.n_tasks):
        sl = model.task_slice(t)
        S = model.gram[sl, sl] + model.noise[t] ** 2 * np.eye(model.classes[t])
        C = model.classes[t]
        D = np.eye(C)[1:] - np.eye(C)[0]
        ev = np.linalg.eigvalsh(D @ S @ D.T)
        if ev[0] <= 1e-9 * max(ev[-1], 1e-300):
            return False
    return True


def integrals(model, st, acc=Accuracy()):
    """All reduced integrals at state `st`: closed forms where derived, quadrature otherwise."""
    factor = gaussian_factor(model.field_cov(st))
    raw = (linear_terms if model.linear else nonlinear_terms)(model, st, factor, acc)
    flat = _flatten_terms(model, raw)
    if CLOSED_NAMES and _closed_usable(model):
        vals = _closed_arrays(st.Q, st.R, st.V, model.gram, model.noise)
        flat.update(dict(zip(CLOSED_NAMES, vals)))
    return flat


def rhs_state(model, st, acc=Accuracy()):
    """(dQ/dt, dR/dt, dV/dt, test losses) at order parameters `st`."""
    terms = integrals(model, st, acc)
    outs = _assemble(st.Q, st.R, st.V, model.gram, model.noise, model.weights, model.shares,
                     model.lr, model.head_lr, model.weight_decay, terms)
    n = model.n_tasks
    dQ, dR = outs[0], outs[1]
    dV = tuple(outs[2:2 + n]) if model.train_heads else ()
    return dQ, dR, dV, outs[-1]


def rhs(model, y, acc=Accuracy()):
    """Packed right-hand side dy/dt for ODE integrators (layout: TheoryModel.pack)."""
    st = model.unpack(y)
    dQ, dR, dV, _ = rhs_state(model, st, acc)
    return model.pack(State(dQ, dR, dV if model.train_heads else st.V))
'''


def generate_module(model, setup_name: str = "") -> str:
    """Source text of the standalone module for `model`'s structure."""
    from .system import derive_online
    s = derive_online(model)
    key = structure_key(model)
    header = (f'"""Generated by mtsp.derive {__version__} — do not edit.\n\n'
              f"Online-SGD order-parameter equations for the structure\n    {key!r}\n"
              f"(first generated for setup {setup_name!r}; valid for every setup of this structure:\n"
              f"parameter values are arguments).  Imports only numpy, scipy and math.\n\n"
              f"Equations: see `rhs_state`; integrals: see `integrals`.\n"
              f'"""\nfrom __future__ import annotations\n\nimport math  # noqa: F401\n\nimport numpy\n\n'
              f"STRUCTURE = {key!r}\nGENERATOR_VERSION = {__version__!r}\n\n")
    return header + _kernel_source() + "\n\n\n# ==================== derived (SymPy) ====================\n" + \
        _generated_part(s) + _ENTRY


def cache_dir() -> str:
    d = os.environ.get("MTSP_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "mtsp")
    os.makedirs(d, exist_ok=True)
    return d


def module_path(model) -> str:
    h = hashlib.sha256(repr((structure_key(model), __version__)).encode()).hexdigest()[:16]
    return os.path.join(cache_dir(), f"online_{h}.py")


_loaded: dict = {}


def _kernel_fingerprint() -> str:
    from importlib import import_module
    h = hashlib.sha256()
    for name in _KERNEL_MODULES:
        h.update(inspect.getsource(import_module(f"mtsp.numeric.{name}")).encode())
    for name in ("system", "closed_forms", "structure"):  # the derivation itself, read as files
        spec = importlib.util.find_spec(f"mtsp.derive.{name}")  # (importing it would load SymPy)
        with open(spec.origin, "rb") as f:
            h.update(f.read())
    h.update(inspect.getsource(sys.modules[__name__]).encode())
    return h.hexdigest()[:16]


def load_module(model, setup_name: str = ""):
    """The generated module of `model`'s structure: from memory, from the disk cache, or freshly
    derived and written (the cache entry is tied to the generator and kernel sources)."""
    key = structure_key(model)
    if key in _loaded:
        return _loaded[key]
    path = module_path(model)[:-len(".py")] + f"_{_kernel_fingerprint()}.py"
    if not os.path.exists(path):
        src = generate_module(model, setup_name)
        tmp = path + f".tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(src)
        os.replace(tmp, path)
    if not os.path.exists(importlib.util.cache_from_source(path)):
        # its bytecode, also where PYTHONDONTWRITEBYTECODE is set (compiling it costs ~20 ms a run)
        import py_compile
        py_compile.compile(path, doraise=False)
    spec = importlib.util.spec_from_file_location(f"mtsp_generated_{abs(hash(key))}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses in the module look themselves up there
    spec.loader.exec_module(mod)
    _loaded[key] = mod
    return mod


# ==================== mpmath back-end (same SymPy system, second printer) ====================
_PRIMITIVE_ACCESS = [
    (re.compile(r"^(h|g|dg|q|u|p)_(\d+)$"), lambda m: f"{m[1]}[{m[2]}]"),
    (re.compile(r"^p(\d+)_(\d+)$"), lambda m: f"p[{m[1]}][{m[2]}]"),
    (re.compile(r"^v(\d+)_(\d+)_(\d+)$"), lambda m: f"v[{m[1]}][{m[2]}][{m[3]}]"),
    (re.compile(r"^Alam_(\d+)_(\d+)$"), lambda m: f"Alam[{m[1]}][{m[2]}]"),
    (re.compile(r"^Cl(\d+)_(\d+)_(\d+)_(\d+)$"), lambda m: f"Cl[{m[1]}][{m[2]}][{m[3]}][{m[4]}]"),
    (re.compile(r"^V(\d+)_(\d+)_(\d+)$"), lambda m: f"V[{m[1]}][{m[2]}, {m[3]}]"),
]


def _integrand_function(name: str, args: str, doc: str, plain: list, linear: list) -> str:
    """An mpmath function of the node primitives returning ([plain outputs], [linear factors])
    (row-major flattening of each matrix), printed from the SymPy integrands with CSE."""
    from sympy.printing.pycode import MpmathPrinter
    printer = MpmathPrinter({"inline": True})
    body, reduced = _cse_body([e for m in plain for e in m] + [e for m in linear for e in m], printer,
                              _PRIMITIVE_ACCESS)
    lines = [f"def {name}({args}):", f'    """{doc}"""'] + body
    vals = [printer.doprint(e) for e in reduced]
    vals = [v if e.free_symbols or not e.is_number else f"mpmath.mpf({v})" for v, e in zip(vals, reduced)]
    n_plain = sum(len(m) for m in plain)
    lines.append(f"    return [{', '.join(vals[:n_plain])}], [{', '.join(vals[n_plain:])}]")
    return "\n".join(lines)


def _linear_integrand_part(s) -> str:
    """Sources of the mp integrand functions of a linear-trunk system (`integrands.linear_integrands`):
    ``LINEAR_INTEGRANDS_MP[name](u, p)`` → ([plain], [linear factors])."""
    from .integrands import linear_integrands
    parts, names = [], []
    for name, (plain, linear) in linear_integrands(s).items():
        parts.append(_integrand_function(f"_linear_{name}_mp", "u, p", f"Integrands {name!r} over the logit "
                                         "differences u (derive.integrands.linear_integrands).", plain, linear))
        names.append(name)
    parts.append("LINEAR_INTEGRANDS_MP = {" + ", ".join(f"{n!r}: _linear_{n}_mp" for n in names) + "}")
    return "\n\n\n".join(parts)


def _integrand_part(s) -> str:
    """Sources of the mp integrand functions of a nonlinear-trunk system (see `integrands`)."""
    from .integrands import nonlinear_integrands
    it = nonlinear_integrands(s)
    parts = [_integrand_function(
        "_h_integrand_mp", it.args,
        "The integrands of every reduced integral over h at one node (derive.integrands).",
        [m for _, m in it.plain], [m for _, m in it.linear])]
    layout = [(name, m.shape[0], m.shape[1]) for name, m in it.plain]
    parts.append(f"H_LAYOUT = {layout!r}\nH_LINEAR_LAYOUT = {[(n, m.shape[0]) for n, m in it.linear]!r}")
    names = {}
    for (a, b, d), m in sorted(it.label_label.items()):
        fname = f"_label_label_mp_{a}_{b}_{d}"
        names[a, b, d] = fname
        parts.append(_integrand_function(
            fname, "V, dg, q", f"Σ_c q_c b_{a}c b_{b}{d}ᵀ inside the cone y_{b} = {d} (row-major K × K).",
            [m], []))
    parts.append("LABEL_LABEL_MP = {" + ", ".join(f"{k!r}: {v}" for k, v in names.items()) + "}")
    return "\n\n\n".join(parts)


def generate_mp_module(model, setup_name: str = "") -> str:
    """Source of the mpmath back-end of `model`'s structure: `_closed_arrays_mp` (closed forms of
    the label terms) and `_assemble_mp` (dQ/dt, dR/dt, dV_t/dt, test losses from the reduced
    integrals), printed by MpmathPrinter from the very SymPy expressions that the NumPy module's
    `_closed_arrays` / `_assemble` are printed from.  Imports only mpmath; deterministic."""
    from .system import derive_online
    s = derive_online(model)
    key = structure_key(model)
    closed_names = sorted(s.closed)
    parts = [f'"""Generated by mtsp.derive {__version__} (mpmath back-end) — do not edit.\n\n'
             f"Structure {key!r} (first generated for setup {setup_name!r}).  Imports only mpmath;\n"
             f'evaluate inside mpmath.workdps(...) for the precision wanted.\n"""\n'
             f"import mpmath\n\nSTRUCTURE = {key!r}\nGENERATOR_VERSION = {__version__!r}\n"
             f"CLOSED_NAMES = {closed_names!r}"]
    parts += list(_derived_functions(s, "mpmath", "_mp"))
    parts.append(_integrand_part(s) if not s.linear else _linear_integrand_part(s))
    return "\n\n\n".join(parts) + "\n"


_loaded_mp: dict = {}


def load_mp_module(model, setup_name: str = ""):
    """The mpmath back-end of `model`'s structure as a module object (cached in memory)."""
    import types
    key = structure_key(model)
    if key not in _loaded_mp:
        src = generate_mp_module(model, setup_name)
        mod = types.ModuleType(f"mtsp_generated_mp_{abs(hash(key))}")
        exec(compile(src, f"<mtsp mp module {key!r}>", "exec"), mod.__dict__)
        mod.SOURCE = src
        _loaded_mp[key] = mod
    return _loaded_mp[key]
