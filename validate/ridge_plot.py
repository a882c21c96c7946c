"""Files of ``mtsp ridge`` (``numeric.ridge.RidgeCurve``).

``write_ridge(curve, out_dir)`` writes ``ridge.json`` (``curve.to_json_dict()``, the schema of
``mtsp ridge --json``), ``ridge.csv`` (one row per point) and, with a varied key, ``ridge.png``:
λ* against the key (log scale; a point whose minimum sits on an end of the search interval drawn
open, with the interval's ends as dotted lines) and beside it the gen_error at λ* and at the
setup's own ridge.  Drawn on matplotlib's Agg canvas directly (no pyplot).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..jsonable import json_safe
from .maps import _figure, _numeric

__all__ = ["plot_ridge", "write_ridge"]


def plot_ridge(curve, path) -> Path:
    """ridge.png: λ*(key) and the gen_error at λ* and at the setup's ridge."""
    vals = [r["value"] for r in curve.rows]
    numeric = _numeric(vals)
    x = np.asarray(vals, float) if numeric else np.arange(len(vals), dtype=float)
    order = np.argsort(x, kind="stable")
    rows = [curve.rows[i] for i in order]
    x = x[order]
    lam = np.array([r["ridge"] for r in rows])
    edge = np.array([r["at_bound"] is not None for r in rows])
    fig, (ax, ax2) = _figure(2)
    ax.plot(x, lam, "-", color="C0", lw=1.4)
    if (~edge).any():
        ax.plot(x[~edge], lam[~edge], "o", color="C0", ms=6, label="λ* (interior minimum)")
    if edge.any():
        ax.plot(x[edge], lam[edge], "o", mfc="white", color="C0", ms=6,
                label="at the search bound (λ* lies beyond)")
    for b in curve.bounds:
        ax.axhline(b, color="0.5", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_ylabel("optimal ridge λ*")
    ax.set_title(f"the ridge minimising the {curve.objective}", fontsize=10)
    g = np.array([r["gen_error"] for r in rows])
    g0 = np.array([r["gen_error0"] for r in rows])
    ax2.plot(x, g, "o-", color="C0", ms=5, label="at λ*")
    ridge0 = sorted({r["ridge0"] for r in rows})
    ax2.plot(x, g0, "s--", color="C1", ms=4, mfc="white",
             label=f"at the setup's ridge λ = {', '.join(f'{v:g}' for v in ridge0)}")
    ax2.set_ylabel(curve.objective)
    ax2.set_title("gen_error (replica theory, N → ∞)", fontsize=10)
    for a in (ax, ax2):
        a.set_xlabel(curve.key)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
        if not numeric:
            a.set_xticks(x, [str(r["value"]) for r in rows])
    fig.suptitle(curve.base.get("name", ""), fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=130)
    return path


def write_ridge(curve, out_dir) -> list[Path]:
    """ridge.json, ridge.csv and (with a varied key) ridge.png in out_dir; the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = out / "ridge.json"
    p.write_text(json.dumps(json_safe(curve.to_json_dict()), indent=1, allow_nan=False) + "\n",
                 encoding="utf-8")
    paths = [p, Path(curve.to_csv(out / "ridge.csv"))]
    if curve.key is not None:
        paths.append(plot_ridge(curve, out / "ridge.png"))
    return paths
