"""Isolation of the test suite from the user's environment and of the tests from one another.

* Generated modules go to a temporary cache (``MTSP_CACHE_DIR``) for the whole session, never
  to the user's ``~/.cache/mtsp`` (a test that needs a cache of its own still sets it itself).
* mpmath's working precision is global state: every test finds it at its default and leaves it
  there, whatever it sets.
"""
import mpmath
import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTSP_CACHE_DIR", str(tmp_path_factory.mktemp("mtsp-cache")))
        yield


@pytest.fixture(autouse=True)
def _restore_mp_precision():
    prec = mpmath.mp.prec
    yield
    mpmath.mp.prec = prec
