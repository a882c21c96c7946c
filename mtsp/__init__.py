"""mtsp — statistical-physics theory of (multitask) neural classifiers.

Data flows one way: setup (``mtsp.setup``) → symbolic derivation (``mtsp.derive``) →
numerical solution (``mtsp.numeric``) → comparison with simulation (``mtsp.validate``).

The Python API (the functions the ``mtsp`` commands call; each loads its back-end when first
used, so ``import mtsp`` stays cheap):

    setup = mtsp.load_setup("examples/two_related_one_noisy.toml")   # or mtsp.default_setup()
    res = mtsp.solve(setup, single=True)            # derive, then numeric.solve.solve (mtsp solve)
    sim = mtsp.simulate(setup, N=1000, seeds=8)     # validate.simulate.simulate (mtsp simulate)
    val = mtsp.validate.validate(setup, out="rep")  # theory vs simulation (mtsp validate)
    der = mtsp.derive.derive(setup, out="eqs")      # SymPy system, sheet, module (mtsp derive)
    swp = mtsp.sweep(setup, {"teacher.alignment": [0, 0.5, 0.9]})   # (mtsp sweep)
    cur = mtsp.validate.validate_curve(erm, {"training.alpha": [1, 2]}, out="c")  # (validate --vary)
    rdg = mtsp.ridge_curve(erm, {"training.alpha": [1, 2]})  # λ* minimising gen_error (mtsp ridge)
    one = mtsp.optimal_ridge(erm)                   # λ* at the setup's own point (numeric.erm)
    rep = mtsp.check(setup)                         # double vs mp right-hand side (mtsp check)
    crt = mtsp.certify(setup)                       # bounds on the printed gen_error (check --trajectory)

`mtsp.solve`, `sweep`, `check`, `certify` (`mtsp.api`) run derive, then numeric: numeric's functions
of the same names take derive's output as their ``generated`` argument.

Errors are the classes of `mtsp.errors` (SetupError, RequestError, ReachError, ConvergenceError).
"""
import importlib as _importlib
import os as _os

# In a source checkout the subpackages live beside this folder (derive/, numeric/, validate/);
# an installed copy has them inside it. Make both layouts importable as mtsp.<sub>.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(_os.path.dirname(__file__), "numeric")) and \
        _os.path.isfile(_os.path.join(_root, "numeric", "__init__.py")):
    __path__.append(_root)  # noqa: F821  (package __path__)

__version__ = "0.1.0"

# name -> the module that defines it (imported when the name is first used)
_API = {
    "solve": "mtsp.api", "Accuracy": "mtsp.numeric.online",
    "sweep": "mtsp.api", "check": "mtsp.api", "certify": "mtsp.api",
    "optimal_ridge": "mtsp.numeric.erm", "ridge_curve": "mtsp.numeric.ridge",
    "simulate": "mtsp.validate.simulate",
    "Setup": "mtsp.setup", "load_setup": "mtsp.setup", "default_setup": "mtsp.setup",
    "setup_from_dict": "mtsp.setup", "setup_from_toml": "mtsp.setup",
    "MtspError": "mtsp.errors", "SetupError": "mtsp.errors", "RequestError": "mtsp.errors",
    "ReachError": "mtsp.errors", "ConvergenceError": "mtsp.errors",
}
_SUBPACKAGES = ("derive", "numeric", "validate")


def __getattr__(name):  # lazy: importing mtsp stays cheap
    if name in _API:
        return getattr(_importlib.import_module(_API[name]), name)
    if name in _SUBPACKAGES:   # mtsp.derive.derive(...), mtsp.validate.validate(...) without an import
        return _importlib.import_module(f"mtsp.{name}")
    raise AttributeError(f"module 'mtsp' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API) | set(_SUBPACKAGES))


__all__ = ["solve", "simulate", "sweep", "check", "certify", "optimal_ridge", "ridge_curve", "Accuracy", "Setup", "load_setup",
           "default_setup", "setup_from_dict", "setup_from_toml", "MtspError", "SetupError",
           "RequestError", "ReachError", "ConvergenceError", "derive", "numeric", "validate",
           "__version__"]
