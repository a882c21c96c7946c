"""The validation report: theory against simulation, as Markdown, JSON and plots.

``write_report(setup, theory_json, sim_json, out_dir)`` writes into ``out_dir``

* ``report.md`` — the verdict stated plainly, a summary of the setup, the gen_error z-score table,
  the multitask-benefit table and the early-stopped values (see ``mtsp.validate.compare``);
* ``results.json`` — ``{"setup": setup.to_dict(), "theory": …, "simulation": …,
  "comparison": Comparison.to_dict(), "run": notes}``;
* ``gen_error.png`` — gen_error against time, one panel per task: theory as lines through the
  reported times (multitask solid, single-task dashed), simulation as points with error bars
  (multitask circles, single-task squares);
* ``benefit.png`` — Δ_t = gen_error(single) − gen_error(multitask) per task, theory line against
  simulation points (only when both results carry single-task baselines).

Plots are drawn on matplotlib's Agg canvas directly (no pyplot, no global backend change).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..jsonable import json_safe as _clean
from .compare import Comparison, compare

__all__ = ["write_report", "plot_gen_error", "plot_benefit"]

_MULTI = dict(color="C0", theory_ls="-", marker="o")
_SINGLE = dict(color="C1", theory_ls="--", marker="s")



def _vals(seq):
    out = []
    for x in seq or []:
        try:
            x = float(x)
        except (TypeError, ValueError):
            x = math.nan
        out.append(x if math.isfinite(x) else math.nan)
    return out


def _times(js):
    t = js.get("times")
    return [0.0] if t is None else _vals(t)


def _figure(n_panels: int, height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    cols = min(n_panels, 3)
    rows = (n_panels + cols - 1) // cols
    fig = Figure(figsize=(4.6 * cols, height * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _sim_label(sim_json):
    n, s = sim_json.get("N"), sim_json.get("seeds")
    if n is None:
        return "simulation"
    return f"simulation (N = {n}" + (f", {s} seeds)" if s is not None else ")")


def _save(fig, title: str, path) -> Path:
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def plot_gen_error(theory_json: dict, sim_json: dict, path, curves: dict | None = None) -> Path:
    """gen_error.png: one panel per task, theory lines, simulation points with error bars.
    With ``curves`` (SolveResult.curves()) the theory lines follow the dense trajectory."""
    names = list(theory_json.get("tasks") or {})
    fig, axes = _figure(max(len(names), 1))
    tt, ts = _times(theory_json), _times(sim_json)
    runs = [("tasks", "multitask", _MULTI), ("single", "single-task", _SINGLE)]
    simlab = _sim_label(sim_json)
    for ax, name in zip(axes, names):
        for key, label, sty in runs:
            th = (theory_json.get(key) or {}).get(name)
            sm = (sim_json.get(key) or {}).get(name)
            dense = (curves or {}).get(key, {}).get(name)
            if dense is not None:
                ax.plot(curves["times"], dense, sty["theory_ls"], color=sty["color"],
                        lw=1.8, label=f"theory (N → ∞), {label}")
            elif th is not None:
                ax.plot(tt, _vals(th.get("gen_error")), sty["theory_ls"], color=sty["color"],
                        lw=1.8, label=f"theory (N → ∞), {label}")
            if sm is not None:
                se = _vals(sm.get("gen_error_se")) or None
                if se is not None:
                    se = [0.0 if math.isnan(x) else x for x in se]
                ax.errorbar(ts, _vals(sm.get("gen_error")), yerr=se, fmt=sty["marker"],
                            color=sty["color"], mfc="white" if key == "single" else sty["color"],
                            ms=6, capsize=3, lw=1.2, label=f"{simlab}, {label}")
        ax.set_title(f"task {name}")
        ax.set_xlabel("time t = steps / N")
        ax.set_ylabel("gen_error  P(argmax z ≠ argmax λ)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, loc="best")
    return _save(fig, f"{theory_json.get('setup', '')}: generalization error, theory vs simulation",
                 path)


def plot_benefit(theory_json: dict, sim_json: dict, path, curves: dict | None = None) -> Path | None:
    """benefit.png: Δ_t = gen_error(single) − gen_error(multitask) per task, theory vs simulation.
    Returns None (and writes nothing) unless both results carry "single"."""
    if not (isinstance(theory_json.get("single"), dict) and isinstance(sim_json.get("single"), dict)):
        return None
    names = list(theory_json.get("tasks") or {})
    fig, axes = _figure(max(len(names), 1))
    tt, ts = _times(theory_json), _times(sim_json)
    simlab = _sim_label(sim_json)
    for ax, name in zip(axes, names):
        th_m, th_s = theory_json["tasks"].get(name), theory_json["single"].get(name)
        sm_m, sm_s = (sim_json.get("tasks") or {}).get(name), sim_json["single"].get(name)
        ax.axhline(0.0, color="0.5", lw=0.8)
        dm, ds = ((curves or {}).get("tasks", {}).get(name), (curves or {}).get("single", {}).get(name))
        if dm is not None and ds is not None:
            ax.plot(curves["times"], [a - b for a, b in zip(ds, dm)], "-", color="C2", lw=1.8,
                    label="theory (N → ∞)")
        elif th_m is not None and th_s is not None:
            d = [a - b for a, b in zip(_vals(th_s.get("gen_error")), _vals(th_m.get("gen_error")))]
            ax.plot(tt, d, "-", color="C2", lw=1.8, label="theory (N → ∞)")
        if sm_m is not None and sm_s is not None:
            d = [a - b for a, b in zip(_vals(sm_s.get("gen_error")), _vals(sm_m.get("gen_error")))]
            se_s, se_m = _vals(sm_s.get("gen_error_se")), _vals(sm_m.get("gen_error_se"))
            se = None
            if se_s and se_m:
                se = [math.sqrt((0 if math.isnan(a) else a) ** 2 + (0 if math.isnan(b) else b) ** 2)
                      for a, b in zip(se_s, se_m)]
            ax.errorbar(ts, d, yerr=se, fmt="o", color="C2", ms=6, capsize=3, lw=1.2,
                        label=simlab)
        ax.set_title(f"task {name}")
        ax.set_xlabel("time t = steps / N")
        ax.set_ylabel("Δ = gen_error(single) − gen_error(multitask)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    return _save(fig, f"{theory_json.get('setup', '')}: multitask benefit (> 0: sharing helps)", path)


def _setup_summary(setup, sim_json: dict, theory_json: dict) -> str:
    lines = []
    if setup is not None:
        tr, st, te = setup.training, setup.student, setup.teacher
        lines += ["| task | classes | noise σ | weight | norm | rank |",
                  "|---|---:|---:|---:|---:|---:|"]
        for t in setup.tasks:
            lines.append(f"| {t.name} | {t.classes} | {t.noise:g} | {t.weight:g} | {t.norm:g} | "
                         f"{t.rank} |")
        lines.append("")
        if te.gram is not None:
            lines.append("- teacher: explicit Gram matrix T (`teacher.gram`)")
        else:
            lines.append(f"- teacher: alignment ρ = {te.alignment:g}, class_map = "
                         f"{te.class_map}" + (f" (seed {te.seed})" if te.class_map == "random"
                                              else ""))
        if st.kind == "shared":
            lines.append(f"- student: shared trunk, K = {st.hidden}, activation {st.activation}, "
                         f"σ₀ = {st.init_scale:g}, one softmax head per task")
        else:
            lines.append(f"- student: glm (one linear softmax classifier per task), "
                         f"σ₀ = {st.init_scale:g}")
        times = "—" if tr.times is None else ", ".join(f"{x:g}" for x in tr.times)
        lines.append(f"- training: {tr.protocol}, inputs {tr.inputs}, η = {tr.lr:g}, "
                     f"η_V = {tr.head_lr:g}, κ = {tr.weight_decay:g}, times {times}")
    lines.append(f"- theory: engine `{theory_json.get('engine', '?')}` (N → ∞)")
    n, s = sim_json.get("N"), sim_json.get("seeds")
    lines.append(f"- simulation: N = {n if n is not None else '?'}, "
                 f"{s if s is not None else '?'} seeds (standard errors over seeds)")
    return "\n".join(lines)


def write_report(setup, theory_json: dict, sim_json: dict, out_dir, *,
                 comparison: Comparison | None = None, n_se: float = 4.0, floor: float = 0.003,
                 notes: dict | None = None, curves: dict | None = None) -> Path:
    """Write report.md, results.json, gen_error.png and (with single-task baselines) benefit.png
    into ``out_dir`` (created if needed); return the path of report.md. ``comparison`` defaults to
    ``compare(theory_json, sim_json, n_se, floor)``; ``notes`` (e.g. timings) go to results.json
    under "run"; ``curves`` (SolveResult.curves()) draws the theory along its dense trajectory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    theory_json, sim_json = _clean(theory_json), _clean(sim_json)
    cmp = comparison if comparison is not None else compare(theory_json, sim_json, n_se, floor)

    timed = theory_json.get("times") is not None     # erm: one value at convergence, no curves
    gen_png = plot_gen_error(theory_json, sim_json, out / "gen_error.png", curves) if timed else None
    ben_png = plot_benefit(theory_json, sim_json, out / "benefit.png", curves) if timed else None
    for png, name in ((gen_png, "gen_error.png"), (ben_png, "benefit.png")):
        if png is None and (out / name).exists():
            (out / name).unlink()   # a stale plot from an earlier run would mislead

    results = {"setup": None if setup is None else setup.to_dict(), "theory": theory_json,
               "simulation": sim_json, "comparison": cmp.to_dict(), "run": notes or {}}
    (out / "results.json").write_text(json.dumps(_clean(results), indent=1, allow_nan=False) + "\n",
                                      encoding="utf-8")

    name = (setup.name if setup is not None else theory_json.get("setup")) or "unnamed setup"
    md = [f"# mtsp validation report: {name}", "",
          f"**Verdict: {cmp.verdict()}**", "",
          f"Criterion, per task and reported time: {cmp.criterion}, with SE the simulation's "
          "standard error over seeds (and the theory's quadrature error where it has one); "
          "z = (theory − simulation) / SE.", "",
          "## Setup", "", _setup_summary(setup, sim_json, theory_json), "",
          "## Generalization error (against the clean teacher)", "",
          *([f"![gen_error vs time]({gen_png.name})", "",
             "Lines: theory (solid multitask, dashed single-task); points: simulation ± one SE.", ""]
            if gen_png is not None else []),
          cmp.table("gen_error"), ""]
    has_single = "single" in theory_json and "single" in sim_json
    if ben_png is not None or (not timed and has_single):
        md += ["## Multitask benefit Δ = gen_error(single) − gen_error(multitask)", "",
               "Positive Δ: training with the other tasks helps this task.", "",
               *([f"![benefit]({ben_png.name})", ""] if ben_png is not None else []),
               cmp.table("benefit"), ""]
    else:
        md += ["## Multitask benefit", "", "Not computed: no single-task baselines in both "
               "results (run without `--no-single`).", ""]
    if cmp.early_stopped:
        md += ["## Early-stopped values (for information, not tested)", "",
               "Minimum of gen_error over the whole trajectory up to the last time; the "
               "simulation's minimum is over a grid of the seed-averaged curve and has no "
               "standard error.", "", cmp.early_table(), ""]
    md += ["## Files", "", "- `results.json`: the setup, both results (MODEL.md JSON schema) and "
           "this comparison"] + ([f"- `{gen_png.name}`" + (f", `{ben_png.name}`" if ben_png else "")]
                                 if gen_png is not None else []) + [""]
    path = out / "report.md"
    path.write_text("\n".join(md), encoding="utf-8")
    return path
