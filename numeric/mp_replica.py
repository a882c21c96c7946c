"""The Newton polish of an erm fixed point in mpmath (`solve_erm(..., precision="mp")`, `mtsp check`).

`cone.MP` gives `cone.DOUBLE`'s methods over NumPy object arrays of mpf, so
`replica.ReplicaMap(…, ar=cone.MP)` is the fixed-point map F_mp — the same rule, prox
Newton, labels (closed forms; Genz on the QMC rule) and prior channel.  `polish_mp`: Newton on
F_mp(x) − x from the double fixed point with the double map's Jacobian, x ← x − (J_F − I)⁻¹ R_mp(x),
until max |R_mp| / (1 + max |x|) < 10^(10 − dps).  Orthants beyond two dims are reached on the QMC
rule only (`erm.mp_accuracy` puts such channels on it)."""
from __future__ import annotations

import mpmath
import numpy as np

from mtsp.errors import ConvergenceError

from .cone import MP
from .replica import FixedPoint, ReplicaMap

__all__ = ["polish_mp"]

MAX_NEWTON = 6


def polish_mp(fp, fmap: ReplicaMap, nodes: list | None = None, dps: int = 30):
    """Newton on F_mp(x) − x (module docstring) from the double fixed point ``fp`` of ``fmap`` at
    ``dps`` digits on ``nodes`` per channel (default the double's); the prox starts from the double
    map's on that rule.  Returns a `replica.FixedPoint` in mp (``iterations``: Newton steps);
    ConvergenceError when the residual stays above 10^(10 − dps) after MAX_NEWTON steps."""
    nodes = list(nodes or fp.nodes)
    x_d = fmap.pack(fp.Q, fp.M, fp.V)
    J = np.empty((len(x_d), len(x_d)))
    for k, e in enumerate(np.diag(1e-6 * (1.0 + np.abs(x_d)))):   # the double map's Jacobian
        J[:, k] = (fmap(x_d + e, fp.nodes)[0] - fmap(x_d - e, fp.nodes)[0]) / (2 * e[k])
    fmap(x_d, nodes)
    with mpmath.workdps(dps):
        ar = MP
        F = ReplicaMap(fmap.channels, fmap.Lam, fmap.G, fmap.acc, len(fmap.groups) < len(fmap.channels), ar)
        F.warm = [{k: ar.array(v) if k == "shift" else v for k, v in w.items()} for w in fmap.warm]
        x, step = ar.array(x_d), ar.inv(ar.array(J - np.eye(len(x_d))))
        for steps in range(MAX_NEWTON + 1):
            r = F(x, nodes)[0] - x
            res = max(np.abs(r)) / (1 + max(np.abs(x)))
            if res < mpmath.mpf(10) ** (10 - dps):
                break
            if steps == MAX_NEWTON:
                raise ConvergenceError("replica", f"the mp polish did not converge in {MAX_NEWTON} Newton "
                                                  f"steps (residual {mpmath.nstr(res, 3)})", residual=float(res))
            x = x - step @ r
        hats = F(x, nodes, train=True)[1]
        return FixedPoint(*F.unpack(x), [h[:3] for h in hats], res, steps, [p for h in hats for p in h[3]], nodes)
