"""mtsp — statistical-physics theory of (multitask) neural classifiers.

Data flows one way: setup (``mtsp.setup``) → symbolic derivation (``mtsp.derive``) →
numerical solution (``mtsp.numeric``) → comparison with simulation (``mtsp.validate``).
"""
import os as _os

# In a source checkout the subpackages live beside this folder (derive/, numeric/, validate/);
# an installed copy has them inside it. Make both layouts importable as mtsp.<sub>.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(_os.path.dirname(__file__), "numeric")) and \
        _os.path.isfile(_os.path.join(_root, "numeric", "__init__.py")):
    __path__.append(_root)  # noqa: F821  (package __path__)

__version__ = "0.1.0"


def __getattr__(name):  # lazy: importing mtsp stays cheap, mtsp.Setup etc. still work
    if name in ("Setup", "SetupError", "load_setup", "setup_from_dict", "setup_from_toml"):
        from . import setup as _setup
        return getattr(_setup, name)
    raise AttributeError(name)

__all__ = ["Setup", "SetupError", "load_setup", "setup_from_dict", "setup_from_toml", "__version__"]
