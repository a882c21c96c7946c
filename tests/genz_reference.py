"""SciPy's randomised Genz integrator for multivariate normal probabilities, seeded where SciPy
allows it: the reference the kernel tests share (test_quadrature, test_online, test_mp).

SciPy ≥ 1.16 integrates by randomised QMC drawing from a generator passed as
``cdf(..., rng=...)``; older SciPy (the declared minimum is 1.10) runs Genz's Fortran code, which
takes no generator (it keeps a stream of its own), so there the keyword is left out.
"""
import numpy as np
from scipy.stats import multivariate_normal


def normal_cdf(upper, cov, *, abseps: float, releps: float = 0.0, maxpts: int | None = 10 ** 7,
               seed: int = 0) -> float:
    """P(X < upper) for X ~ N(0, cov)."""
    upper = np.asarray(upper, float)
    kw = {"mean": np.zeros(len(upper)), "cov": cov, "abseps": abseps, "releps": releps, "maxpts": maxpts}
    try:
        return float(multivariate_normal.cdf(upper, rng=np.random.default_rng(seed), **kw))
    except TypeError:  # SciPy < 1.16: no rng keyword
        return float(multivariate_normal.cdf(upper, **kw))
