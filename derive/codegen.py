"""Code generation: the module of one setup structure, printed from its SymPy system (the PyDy
pattern: the generated code evaluates expressions, the library runs them).

`generate_module(model)` prints, for NumPy,

1. ``_closed_arrays(Q, R, V, T, sigma)``: the closed forms of the derivation (Stein / orthant
   label terms), named ``CLOSED_NAMES``, after common-subexpression elimination;
2. ``_assemble(Q, R, V, T, sigma, w, pi, eta, eta_V, kappa, terms)``: dQ/dt, dR/dt, dV_t/dt and
   the test losses as explicit expressions in the order parameters and the reduced integrals;
3. a docstring stating the structure, the state layout and the reduced integrals, and the entry
   points ``integrals`` / ``rhs_state`` / ``rhs``, bound by ``mtsp.numeric.kernel.GeneratedSystem``
   (quadrature, closed-form routing and packing live in the library, `numeric.engine`).

`generate_mp_module(model)` prints the same expressions for mpmath (``_closed_arrays_mp``,
``_assemble_mp``) and the integrands of the mp quadrature; it imports only mpmath and is run by
`numeric.engine` / `numeric.mp_online`.

Generated files are deterministic (byte-identical for the same structure).  `load_module` /
`load_mp_module` cache them in memory and on disk (``$MTSP_CACHE_DIR`` or ``~/.cache/mtsp``):
one small file per structure, named by the structure, the generator's version and a fingerprint
of the derivation's sources (`derive_fingerprint`); the least recently used beyond
`CACHE_ENTRIES` are removed.
"""
from __future__ import annotations

import atexit
import hashlib
import importlib.util
import os
import py_compile
import re
import shutil
import sys
import tempfile
import warnings
from importlib.metadata import version

from .. import __version__
from .structure import structure_key  # SymPy is imported only when a module is generated

__all__ = ["generate_module", "load_module", "module_path", "cache_dir", "generate_mp_module", "load_mp_module",
           "derive_fingerprint", "GENERATOR_VERSION", "CACHE_ENTRIES", "GeneratedModules", "GENERATED"]

GENERATOR_VERSION = 2   # 1: the kernel pasted into every module; 2: modules import mtsp.numeric.kernel
CACHE_ENTRIES = 64      # generated modules kept on disk (least recently used removed beyond)
# the derivation's sources: everything that decides what is printed (read as files: importing
# them would load SymPy)
_DERIVE_SOURCES = ("system", "closed_forms", "structure", "integrands", "codegen")


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


def _state_layout(s) -> str:
    """The packed state y of `TheoryModel.pack` for the structure of system `s`, as text."""
    K, M = s.K, s.M
    parts = [f"Q[i, j] for i <= j (upper triangle row by row): {K * (K + 1) // 2}",
             f"R (K x M = {K} x {M}) row-major: {K * M}"]
    if s.train_heads:
        parts += [f"V_{t} ({c} x {K}) row-major: {c * K}" for t, c in enumerate(s.classes)]
    n = K * (K + 1) // 2 + K * M + (sum(c * K for c in s.classes) if s.train_heads else 0)
    return f"y (length {n}) =\n    " + ";\n    ".join(parts) + "."


def _docstring(s, key, setup_name: str, backend: str) -> str:
    """The generated module's docstring: structure, order parameters, state layout, integrals."""
    K, M = s.K, s.M
    heads = "trained" if s.train_heads else "fixed"
    lines = [f"Generated by mtsp.derive {__version__} (generator {GENERATOR_VERSION}, {backend}) — do not edit.",
             "",
             "Online-SGD order-parameter equations for the structure",
             f"    {key!r}",
             f"(first generated for setup {setup_name!r}; valid for every setup of this structure:",
             "parameter values are arguments).",
             "",
             f"Order parameters: Q = W Wᵀ/N ({K} x {K}), R = W Bᵀ/N ({K} x {M}), heads V_t "
             f"({', '.join(f'{c} x {K}' for c in s.classes)}; {heads}).",
             "State " + _state_layout(s),
             "Parameters: T (teacher Gram, M x M), sigma_t (label noise), w_t (task weights), pi_t",
             "(task shares), eta, eta_V (learning rates), kappa (weight decay).",
             "",
             "Reduced integrals (`terms`; name: shape, reduced dimension — meaning):"]
    for name, (mat, desc, dim) in sorted(s.integrals.items()):
        lines.append(f"    {name}: {mat.shape[0]} x {mat.shape[1]}, {dim}-dim — {desc}")
    if s.closed:
        lines += ["Closed forms (`CLOSED_NAMES`, used where every label cone is nondegenerate, else",
                  f"integrated like the others): {', '.join(sorted(s.closed))}."]
    return "\n".join(lines).replace('"""', '\\"""')  # a raw docstring: a setup name cannot end it


def _generated_part(s) -> str:
    closed, assemble = _derived_functions(s)
    return "\n\n\n".join([closed, f"CLOSED_NAMES = {sorted(s.closed)!r}", assemble])


_ENTRY = '''


# the library runs the expressions above: quadrature, closed-form routing, packing
SYSTEM = GeneratedSystem(CLOSED_NAMES, _closed_arrays, _assemble)
integrals, rhs_state, rhs = SYSTEM.integrals, SYSTEM.rhs_state, SYSTEM.rhs
'''


def generate_module(model, setup_name: str = "") -> str:
    """Source text of the NumPy module for `model`'s structure: printed expressions, and entry
    points bound by `mtsp.numeric.kernel` (which it imports; it defines no kernel routine)."""
    from .system import derive_online
    s = derive_online(model)
    key = structure_key(model)
    header = (f'r"""{_docstring(s, key, setup_name, "NumPy")}\n"""\n'
              "import numpy\nimport numpy as np  # noqa: F401  (the printer writes both)\n\n"
              "from mtsp.numeric.kernel import Accuracy, GeneratedSystem, task_metrics  # noqa: F401\n\n"
              f"STRUCTURE = {key!r}\nGENERATOR_VERSION = {GENERATOR_VERSION!r}\n\n\n")
    return header + _generated_part(s) + _ENTRY


_cache: dict = {}   # requested cache folder -> the folder in use (a fallback decided once)


def cache_dir() -> str:
    """The cache folder: ``$MTSP_CACHE_DIR`` or ``~/.cache/mtsp``, created if missing; where it
    cannot be created or written, a temporary folder for this process (removed at exit), with one
    warning."""
    d = os.environ.get("MTSP_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "mtsp")
    if d in _cache and os.path.isdir(_cache[d]):
        return _cache[d]
    requested = d
    try:
        os.makedirs(d, exist_ok=True)
        usable = os.access(d, os.W_OK | os.X_OK)
        why = "it is not writable"
    except OSError as e:
        usable, why = False, f"it cannot be created ({e.strerror or e})"
    if not usable:
        tmp = tempfile.mkdtemp(prefix="mtsp-cache-")
        atexit.register(shutil.rmtree, tmp, True)
        warnings.warn(f"the cache folder {d!r} is not usable: {why}; using the temporary folder "
                      f"{tmp!r} for this run (set MTSP_CACHE_DIR to a writable folder to keep the "
                      "generated modules)", stacklevel=2)
        d = tmp
        _cache[requested] = d   # a usable folder is checked again next time (it may be removed)
    return d


_fingerprint: list = []


def derive_fingerprint() -> str:
    """A hash of what decides the printed text besides the structure: the generator's version,
    the derivation's sources (`_DERIVE_SOURCES`) and SymPy's version (its CSE and printers)."""
    if not _fingerprint:
        h = hashlib.sha256(repr((__version__, GENERATOR_VERSION, version("sympy"))).encode())
        for name in _DERIVE_SOURCES:
            spec = importlib.util.find_spec(f"mtsp.derive.{name}")
            with open(spec.origin, "rb") as f:
                h.update(f.read())
        _fingerprint.append(h.hexdigest()[:16])
    return _fingerprint[0]


def module_path(model, backend: str = "numpy") -> str:
    """The cache file of `model`'s structure: online[_mp]_<structure hash>_<derive_fingerprint>.py."""
    h = hashlib.sha256(repr(structure_key(model)).encode()).hexdigest()[:16]
    prefix = "online" if backend == "numpy" else "online_mp"
    return os.path.join(cache_dir(), f"{prefix}_{h}_{derive_fingerprint()}.py")


def _prune(directory: str, keep: int | None = None) -> None:
    """Remove the least recently used generated modules (and their bytecode) beyond `keep`
    (default `CACHE_ENTRIES`); entries of other generator versions or derivation sources age out."""
    keep = CACHE_ENTRIES if keep is None else keep
    entries = []
    for name in os.listdir(directory):
        if name.startswith("online") and name.endswith(".py"):
            try:
                entries.append((os.stat(os.path.join(directory, name)).st_mtime, name))
            except FileNotFoundError:  # removed by another process meanwhile
                pass
    entries.sort(reverse=True)
    for _, name in entries[keep:]:
        path = os.path.join(directory, name)
        for p in (path, importlib.util.cache_from_source(path)):
            try:
                os.remove(p)
            except FileNotFoundError:
                pass


def _load_file(model, backend: str, generate, setup_name: str):
    """The module of `model`'s structure from its cache file, written first if missing; a cache
    file that fails to load (truncated, garbled) is regenerated once, with a warning naming it."""
    path = module_path(model, backend)
    if os.path.exists(path):
        try:
            os.utime(path)  # recently used (`_prune`)
        except OSError:
            pass
    else:
        _write(path, generate(model, setup_name))
        _prune(os.path.dirname(path))
    if not os.path.exists(importlib.util.cache_from_source(path)):
        # its bytecode, also where PYTHONDONTWRITEBYTECODE is set (compiling it costs ~20 ms a run)
        py_compile.compile(path, doraise=False, quiet=2)
    try:
        return _exec_file(path)
    except Exception as e:  # a truncated or garbled cache file: regenerated once, with a warning
        warnings.warn(f"the generated module {path!r} in the cache failed to load "
                      f"({type(e).__name__}: {e}); regenerating it", stacklevel=2)
        for p in (path, importlib.util.cache_from_source(path)):
            try:
                os.remove(p)
            except OSError:
                pass
        _write(path, generate(model, setup_name))
        return _exec_file(path)   # a second failure is a bug of the generator: it shows


def _write(path: str, src: str) -> None:
    """Write `src` to `path` atomically (a temporary file beside it, then renamed)."""
    tmp = path + f".tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(src)
    os.replace(tmp, path)


# what each kind of generated module defines last: a module without one is incomplete
_LAST_NAMES = ("rhs", "LABEL_LABEL_MP", "LINEAR_INTEGRANDS_MP")


def _exec_file(path: str):
    """Import the generated module at `path` (checked: it defines its structure's entry points)."""
    name = "mtsp_generated_" + os.path.basename(path)[:-len(".py")]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
        if getattr(mod, "GENERATOR_VERSION", None) != GENERATOR_VERSION or not hasattr(mod, "STRUCTURE") \
                or not any(hasattr(mod, n) for n in _LAST_NAMES):
            raise ImportError("it does not define this generator's names (truncated?)")
    except BaseException:
        sys.modules.pop(spec.name, None)
        raise
    return mod


_loaded: dict = {}


def load_module(model, setup_name: str = ""):
    """The generated NumPy module of `model`'s structure: from memory, from the disk cache, or
    freshly derived and written (see `module_path`)."""
    key = structure_key(model)
    if key not in _loaded:
        _loaded[key] = _load_file(model, "numpy", generate_module, setup_name)
    return _loaded[key]


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
    `_closed_arrays` / `_assemble` are printed from, and the integrands of the mp quadrature
    (`_h_integrand_mp`, `LABEL_LABEL_MP` or `LINEAR_INTEGRANDS_MP`).  Imports only mpmath;
    deterministic; run by `numeric.engine.GeneratedSystem` with the mp rules."""
    from .system import derive_online
    s = derive_online(model)
    key = structure_key(model)
    closed_names = sorted(s.closed)
    doc = _docstring(s, key, setup_name, "mpmath")
    parts = [f'r"""{doc}\n\nEvaluate inside mpmath.workdps(...) for the precision wanted; states are\n'
             f'mtsp.model.State objects holding numpy object arrays of mpf.\n"""\n'
             f"import mpmath\n\nSTRUCTURE = {key!r}\nGENERATOR_VERSION = {GENERATOR_VERSION!r}\n"
             f"CLOSED_NAMES = {closed_names!r}"]
    parts += list(_derived_functions(s, "mpmath", "_mp"))
    parts.append(_integrand_part(s) if not s.linear else _linear_integrand_part(s))
    return "\n\n\n".join(parts) + "\n"


_loaded_mp: dict = {}


def load_mp_module(model, setup_name: str = ""):
    """The mpmath back-end of `model`'s structure as a module object (cached in memory and on
    disk like `load_module`); ``SOURCE``: its text."""
    key = structure_key(model)
    if key not in _loaded_mp:
        mod = _load_file(model, "mpmath", generate_mp_module, setup_name)
        with open(mod.__file__, encoding="utf-8") as f:
            mod.SOURCE = f.read()
        _loaded_mp[key] = mod
    return _loaded_mp[key]


class GeneratedModules:
    """What `derive` hands `numeric`: the generated module of each setup structure it is asked
    for — ``numpy(model, setup_name)`` (`load_module`) and ``mpmath(model, setup_name)``
    (`load_mp_module`), derived when first asked for and cached.  A solve meets several structures
    (its single-task baselines, a sweep's points), so numeric receives this object from its caller
    (`mtsp.api`, the CLI) rather than one module.  Stateless, so it pickles to worker processes."""

    def numpy(self, model, setup_name: str = ""):
        return load_module(model, setup_name)

    def mpmath(self, model, setup_name: str = ""):
        return load_mp_module(model, setup_name)

    def __repr__(self) -> str:
        return "mtsp.derive.GENERATED"


GENERATED = GeneratedModules()
