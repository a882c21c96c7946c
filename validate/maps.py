"""Plots and files of a parameter sweep (``mtsp.numeric.sweep.SweepResult``).

``write_sweep(result, out_dir)`` writes into ``out_dir``

* ``sweep.json`` — ``result.to_json_dict()`` (the schema of ``mtsp sweep --json``);
* ``sweep.csv`` — the same table, one row per grid point (``SweepResult.columns()``);
* ``benefit.png`` — one varied key: Δ_t = gen_error(single) − gen_error(multi) against the key, one
  curve per task (left), and the gen_errors themselves (right: multitask solid, single dashed);
* ``benefit_map.png`` — two varied keys: one heatmap of Δ_t per task (first key on the x axis,
  second on the y axis), a diverging colour map centred at Δ = 0 (``TwoSlopeNorm`` from −max|Δ|
  to +max|Δ|; red: sharing helps, blue: it hurts), the Δ = 0 contour drawn and labelled, and a
  colour bar;
* ``points/point_NNNN.toml`` — the setup of every valid grid point (``mtsp solve --single`` on it
  reproduces the point's numbers exactly).

With three or more varied keys only the JSON, CSV and point files are written. Plots are drawn on
matplotlib's Agg canvas directly (no pyplot, no global backend change).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..jsonable import json_safe as _clean

__all__ = ["write_sweep", "plot_benefit_curves", "plot_benefit_maps"]

_DELTA = "Δ = gen_error(single) − gen_error(multi)"



def _figure(n_panels: int, width: float = 4.8, height: float = 3.9):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    cols = min(n_panels, 3)
    rows = (n_panels + cols - 1) // cols
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
               for v in values)


def _at_text(result) -> str:
    return "" if result.at is None else f" at t = {result.at:g}"


def plot_benefit_curves(result, path) -> Path:
    """One varied key: Δ_t per task against the key, and the gen_errors beside it."""
    key = result.keys[0]
    vals = list(result.vary[key])
    numeric = _numeric(vals)
    x = np.asarray(vals, float) if numeric else np.arange(len(vals))
    order = np.argsort(x, kind="stable")
    x, vals = x[order], [vals[i] for i in order]
    fig, (ax, ax2) = _figure(2)
    for i, task in enumerate(result.tasks):
        d = result.curve(task, "benefit")[1][order]
        m = result.curve(task, "multi")[1][order]
        s = result.curve(task, "single")[1][order]
        ax.plot(x, d, marker="o", ms=3.5, color=f"C{i}", label=f"task {task}")
        ax2.plot(x, m, marker="o", ms=3.5, color=f"C{i}", label=f"{task} multitask")
        ax2.plot(x, s, marker="s", ms=3, ls="--", color=f"C{i}", label=f"{task} single")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_ylabel(_DELTA)
    ax.set_title(f"multitask benefit{_at_text(result)}\n(> 0: sharing helps the task)",
                 fontsize=10)
    ax2.set_ylabel("gen_error")
    ax2.set_title(f"gen_error{_at_text(result)}", fontsize=10)
    for a in (ax, ax2):
        a.set_xlabel(key)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
        if not numeric:
            a.set_xticks(x, [str(v) for v in vals])
    fig.suptitle(result.base.get("name", ""), fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=130)
    return path


def plot_benefit_maps(result, path) -> Path:
    """Two varied keys: a heatmap of Δ_t per task, centred at 0, with the Δ = 0 contour."""
    from matplotlib.colors import TwoSlopeNorm
    k1, k2 = result.keys
    fig, axes = _figure(len(result.tasks), width=5.0, height=4.2)
    for ax, task in zip(axes, result.tasks):
        v1, v2, Z = result.grid(task, "benefit")
        num1, num2 = _numeric(v1), _numeric(v2)
        x = np.asarray(v1, float) if num1 else np.arange(len(v1), dtype=float)
        y = np.asarray(v2, float) if num2 else np.arange(len(v2), dtype=float)
        ix, iy = np.argsort(x, kind="stable"), np.argsort(y, kind="stable")  # values in any order
        x, y, Z = x[ix], y[iy], Z[np.ix_(iy, ix)]
        v1, v2 = [v1[i] for i in ix], [v2[j] for j in iy]
        Zm = np.ma.masked_invalid(Z)
        finite = Z[np.isfinite(Z)]
        span = float(np.max(np.abs(finite))) if finite.size else 0.0
        span = span if span > 0 else 1e-12
        # centred at 0 with equal reach both ways: equal colours mean equal |Δ|
        norm = TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span)
        mesh = ax.pcolormesh(x, y, Zm, cmap="RdBu_r", norm=norm, shading="nearest")
        cb = fig.colorbar(mesh, ax=ax)
        cb.set_label(f"Δ_{task} (single − multi)")
        title = f"task {task}: multitask benefit{_at_text(result)}"
        sign_change = finite.size and finite.min() < 0 < finite.max()
        if len(x) >= 2 and len(y) >= 2 and sign_change:
            cs = ax.contour(x, y, Zm, levels=[0.0], colors="k", linewidths=1.4)
            ax.clabel(cs, fmt={0.0: "Δ = 0"}, fontsize=8)
            cb.ax.axhline(0.0, color="k", lw=1.4)
        elif finite.size:
            title += "\n(Δ > 0 everywhere)" if finite.min() >= 0 else \
                "\n(Δ < 0 everywhere)" if finite.max() <= 0 else ""
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(k1)
        ax.set_ylabel(k2)
        if not num1:
            ax.set_xticks(x, [str(v) for v in v1])
        if not num2:
            ax.set_yticks(y, [str(v) for v in v2])
    fig.suptitle(f"{result.base.get('name', '')} — red: sharing helps, blue: sharing hurts",
                 fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=130)
    return path


def write_sweep(result, out_dir, *, points: bool = True) -> list[Path]:
    """Write the sweep's JSON, CSV, plot and (``points``) the setup of every point into out_dir;
    returns the paths written."""
    from mtsp.numeric.sweep import point_setup, setup_toml
    from mtsp.setup import setup_from_dict
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    p = out / "sweep.json"
    p.write_text(json.dumps(_clean(result.to_json_dict()), indent=1, allow_nan=False) + "\n")
    paths.append(p)
    paths.append(Path(result.to_csv(out / "sweep.csv")))
    if len(result.keys) == 1:
        paths.append(plot_benefit_curves(result, out / "benefit.png"))
    elif len(result.keys) == 2:
        paths.append(plot_benefit_maps(result, out / "benefit_map.png"))
    if points:
        base = setup_from_dict(result.base)
        pdir = out / "points"
        pdir.mkdir(exist_ok=True)
        for r in result.records:
            s = point_setup(base, {k: r[k] for k in result.keys}, result.at)
            f = pdir / f"point_{r['index']:04d}.toml"
            f.write_text(setup_toml(s))
        paths.append(pdir)
    return paths
