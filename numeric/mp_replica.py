"""The Newton polish of an erm fixed point in mpmath (`solve_erm(..., precision="mp")`, `mtsp check`):
`replica.ReplicaMap(…, ar=cone.MP)` is the fixed-point map F_mp (the double map's code over object
arrays of mpf); Newton on F_mp(x) − x from the double fixed point with the double map's Jacobian,
x ← x − (J_F − I)⁻¹ R_mp(x), until max |R_mp| / (1 + max |x|) < 10^(10 − dps)."""
from __future__ import annotations

import mpmath
import numpy as np

from mtsp.errors import ConvergenceError

from .cone import MP
from .replica import FixedPoint, ReplicaMap

__all__ = ["polish_mp"]

MAX_NEWTON = 6


def polish_mp(fp, fmap: ReplicaMap, nodes: list | None = None, dps: int = 30):
    """The module's Newton from ``fp`` (of ``fmap``) at ``dps`` digits on ``nodes`` per channel (default
    the double's; the prox starts from the double map's): a `replica.FixedPoint` in mp, ``iterations``
    its Newton steps; ConvergenceError while the residual stays above the bound after MAX_NEWTON."""
    nodes = list(nodes or fp.nodes)
    x_d = fmap.pack(fp.Q, fp.M, fp.V)
    J = np.empty((len(x_d), len(x_d)))
    for k, e in enumerate(np.diag(1e-6 * (1.0 + np.abs(x_d)))):   # the double map's Jacobian
        J[:, k] = (fmap(x_d + e, fp.nodes)[0] - fmap(x_d - e, fp.nodes)[0]) / (2 * e[k])
    fmap(x_d, nodes)
    with mpmath.workdps(dps):
        F = ReplicaMap(fmap.channels, fmap.Lam, fmap.G, fmap.acc, len(fmap.groups) < len(fmap.channels), MP)
        F.warm = [{k: MP.array(v) if k == "shift" else v for k, v in w.items()} for w in fmap.warm]
        x, step = MP.array(x_d), MP.inv(MP.array(J - np.eye(len(x_d))))
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
