"""Learning curves: theory against simulation along one varied key — ``mtsp validate SETUP --vary
KEY=VALUES`` (e.g. gen_error(α) of an erm setup with ``--vary training.alpha=0.5,1,2,5``).

`validate_curve` runs `validation.validate` (theory, simulation, comparison: 4 SE + 0.003 per value)
at every value of the key — each point is ``sweep.point_setup(base, {KEY: value})``, the base with
that value substituted — and draws the theory as a line: the grid values themselves plus
``theory_points`` values spaced evenly between the smallest and largest (numeric keys only), each a
`numeric.solve.solve` of its point. Everything is checked before anything runs (the key, every point's
setup, the protocol, the simulator, N, the folder).  With one task there is no single-task baseline
(the task alone is the setup itself).  Time-resolved protocols are compared at every reported time;
the plots show the last.

``write_curve_report`` writes into a folder

* ``report.md`` — the verdict, the setup, the plots and one table of every comparison;
* ``results.json`` — ``{"setup", "key", "values", "points": [{"value", "theory", "simulation",
  "comparison"}], "theory_line", "verdict", "agrees", "run"}`` (theory and simulation: the MODEL.md
  JSON objects of `mtsp solve --json` / `mtsp simulate --json` at that point);
* ``curve.csv`` — one row per comparison: KEY, quantity, run, task, time, theory, simulation, se, z,
  agrees; ``theory_line.csv`` — KEY and the theory's gen_error of every task (and baseline);
* ``gen_error.png`` — gen_error against KEY, one panel per task: theory lines (multitask solid,
  single-task dashed), simulation points ± one SE; ``benefit.png`` (two or more tasks with their
  baselines) — Δ = gen_error(single) − gen_error(multitask), theory line and simulation points.
"""
from __future__ import annotations

import csv
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RequestError
from ..files import check_out, staged
from ..jsonable import json_safe
from ..progress import Progress
from .report import _MULTI, _SINGLE, _figure, _save, _setup_summary, _sim_label, _vals

__all__ = ["CurveValidation", "validate_curve", "write_curve_report", "line_values"]


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
               for v in values)


def line_values(values, theory_points: int) -> list:
    """The values of the theory line: the grid values and ``theory_points`` evenly spaced ones
    from the smallest to the largest (numeric keys with two or more values; else the grid's)."""
    if theory_points <= 0 or len(values) < 2 or not _numeric(values):
        return list(values)
    dense = np.linspace(min(values), max(values), theory_points)
    return sorted(set(float(f"{v:.12g}") for v in dense) | set(float(v) for v in values))


@dataclass
class CurveValidation:
    """The outcome of `validate_curve`: the key, its values, one `Validation` per value, the
    theory line ``{"values": [...], "tasks": {task: [gen_error]}, "single": {...}, "time": t}``,
    the report's path and the seconds of each stage."""
    setup_name: str
    key: str
    values: list
    points: list
    line: dict
    report: Path | None = None
    notes: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    @property
    def rows(self) -> list:
        """Every comparison row of every point, with the point's value under "value"."""
        return [dict(r, value=v) for v, p in zip(self.values, self.points)
                for r in p.comparison.rows]

    @property
    def agrees(self) -> bool:
        return all(p.agrees for p in self.points)

    def verdict(self, max_listed: int = 3) -> str:
        rows = self.rows
        zs = [abs(r["z"]) for r in rows if r["z"] is not None]
        crit = self.points[0].comparison.criterion
        if self.agrees:
            return (f"Theory and simulation agree at all {len(self.values)} values of {self.key} "
                    f"(max |z| = {max(zs):.2f} over {len(rows)} comparisons; criterion {crit}).")
        bad = [r for r in rows if not r["agrees"]]
        listed = "; ".join(f"{self.key} = {r['value']}: "
                           + self.points[0].comparison.describe(r) for r in bad[:max_listed])
        more = f"; and {len(bad) - max_listed} more" if len(bad) > max_listed else ""
        return (f"Theory and simulation DISAGREE at {len(bad)} of {len(rows)} comparisons "
                f"(criterion {crit}): {listed}{more}.")


def _last(d: dict | None):
    """gen_error at the last reported time of one task's result block."""
    if d is None:
        return math.nan
    g = d.get("gen_error")
    g = g if isinstance(g, (list, tuple)) else list(np.atleast_1d(g))
    return float(g[-1])


def validate_curve(setup, vary: dict, *, N: int = 1000, seeds: int = 8, device: str = "cpu",
                   single: bool = True, out=None, theory_points: int | None = None,
                   show_progress: bool = False) -> CurveValidation:
    """`validate` at every value of one key (``vary = {KEY: [values]}``, the keys of `mtsp sweep`)
    and a theory line through ``theory_points`` more values (default: 24 for erm, 0 for the
    time-resolved protocols, whose solves are longer); with ``out`` the report is written there.
    RequestError / SetupError / ReachError before anything runs."""
    from ..api import solve
    from ..numeric.solve import check_protocol
    from ..numeric.sweep import _canonical_key, check_key, point_setup
    from .validation import check_simulation, validate
    if not isinstance(vary, dict) or len(vary) != 1:
        raise RequestError("vary", "a learning curve varies exactly one key (give one "
                                   "--vary KEY=VALUES)")
    (key, values), = vary.items()
    check_key(setup, key)
    key = _canonical_key(setup, key)
    values = list(values)
    if not values:
        raise RequestError(key, "no values")
    if theory_points is None:
        theory_points = 24 if setup.training.protocol == "erm" else 0
    if isinstance(theory_points, bool) or not isinstance(theory_points, int) or theory_points < 0:
        raise RequestError("theory_points", f"expected an integer >= 0, got {theory_points!r}")
    single = bool(single) and len(setup.tasks) > 1
    points = [point_setup(setup, {key: v}) for v in values]     # SetupError names key and reason
    for s in points:
        check_protocol(s)
        check_simulation(s, N=N, seeds=seeds, device=device, standard_error=True)
    folder = None if out is None else check_out(out)
    line_x = line_values(values, theory_points)
    extra = [v for v in line_x if not any(v == u for u in values)]
    extra_setups = [point_setup(setup, {key: v}) for v in extra]

    t0 = time.perf_counter()
    results = []
    for i, (v, s) in enumerate(zip(values, points)):
        if show_progress:
            print(f"validate: {key} = {v} ({i + 1}/{len(values)})", file=sys.stderr, flush=True)
        results.append(validate(s, N=N, seeds=seeds, device=device, single=single,
                                show_progress=show_progress))
    t1 = time.perf_counter()
    solved = {}
    with Progress("theory line", enabled=show_progress and bool(extra)) as p:
        for k, (v, s) in enumerate(zip(extra, extra_setups)):
            solved[v] = solve(s, single=single).to_json_dict()
            p((k + 1) / len(extra))
    for v, r in zip(values, results):
        solved.setdefault(v, r.theory.to_json_dict())
    t2 = time.perf_counter()
    first = json_safe(results[0].theory.to_json_dict())
    times = first.get("times")
    line = {"key": key, "values": [], "time": None if times is None else times[-1],
            "tasks": {t.name: [] for t in setup.tasks}}
    if single:
        line["single"] = {t.name: [] for t in setup.tasks}
    for v in line_x:
        js = solved[v]
        line["values"].append(v)
        for sec in ("tasks", "single") if single else ("tasks",):
            for name in line[sec]:
                line[sec][name].append(_last((js.get(sec) or {}).get(name)))
    notes = {"N": N, "seeds": seeds, "device": device, "single": single,
             "theory_points": theory_points, "validate_s": round(t1 - t0, 2),
             "theory_line_s": round(t2 - t1, 2)}
    res = CurveValidation(setup.name, key, values, results, line, notes=notes,
                          seconds={"validate": t1 - t0, "theory_line": t2 - t1})
    if folder is not None:
        with staged(folder) as tmp:
            written = write_curve_report(setup, res, tmp)
        res.report = folder / Path(written).name
        res.seconds["report"] = time.perf_counter() - t2
    return res


# ----------------------------------------------------------------------------------------------
# the report

def _x(values):
    """Plot positions of the key's values (categories: 0, 1, ...) and their tick labels."""
    if _numeric(values):
        return [float(v) for v in values], None
    return list(range(len(values))), [str(v) for v in values]


def _sim_points(res: CurveValidation, sec: str, name: str):
    g, se = [], []
    for p in res.points:
        d = (p.simulation.to_json_dict().get(sec) or {}).get(name)
        g.append(_last(d))
        s = None if d is None else d.get("gen_error_se")
        se.append(_last({"gen_error": s}) if s is not None else 0.0)
    return g, se


def plot_curve(setup_name: str, res: CurveValidation, path) -> Path:
    """gen_error.png: gen_error against the key per task, theory lines and simulation points."""
    names = list(res.line["tasks"])
    fig, axes = _figure(max(len(names), 1))
    secs = [("tasks", "multitask", _MULTI)] + ([("single", "single-task", _SINGLE)]
                                               if "single" in res.line else [])
    x_line, ticks = _x(res.line["values"])
    x_pts, _ = _x(res.values) if ticks is None else (
        [res.line["values"].index(v) for v in res.values], None)
    simlab = _sim_label(res.points[0].simulation.to_json_dict())
    at = "" if res.line["time"] is None else f" at t = {res.line['time']:g}"
    for ax, name in zip(axes, names):
        for sec, label, sty in secs:
            ax.plot(x_line, _vals(res.line[sec][name]), sty["theory_ls"], color=sty["color"],
                    lw=1.8, label=f"theory (N → ∞), {label}")
            g, se = _sim_points(res, sec, name)
            ax.errorbar(x_pts, g, yerr=se, fmt=sty["marker"], color=sty["color"],
                        mfc="white" if sec == "single" else sty["color"], ms=6, capsize=3,
                        lw=1.2, label=f"{simlab}, {label}")
        ax.set_title(f"task {name}")
        ax.set_xlabel(res.key)
        ax.set_ylabel(f"gen_error{at}")
        if ticks is not None:
            ax.set_xticks(x_line, ticks)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, loc="best")
    return _save(fig, f"{setup_name}: generalization error against {res.key}, theory vs "
                      "simulation", path)


def plot_curve_benefit(setup_name: str, res: CurveValidation, path) -> Path | None:
    """benefit.png: Δ = gen_error(single) − gen_error(multitask) against the key per task."""
    if "single" not in res.line:
        return None
    names = list(res.line["tasks"])
    fig, axes = _figure(max(len(names), 1))
    x_line, ticks = _x(res.line["values"])
    x_pts = _x(res.values)[0] if ticks is None else [res.line["values"].index(v)
                                                      for v in res.values]
    simlab = _sim_label(res.points[0].simulation.to_json_dict())
    for ax, name in zip(axes, names):
        ax.axhline(0.0, color="0.5", lw=0.8)
        d = np.asarray(res.line["single"][name]) - np.asarray(res.line["tasks"][name])
        ax.plot(x_line, d, "-", color="C2", lw=1.8, label="theory (N → ∞)")
        gm, sm = _sim_points(res, "tasks", name)
        gs, ss = _sim_points(res, "single", name)
        ax.errorbar(x_pts, np.asarray(gs) - np.asarray(gm), yerr=np.hypot(sm, ss), fmt="o",
                    color="C2", ms=6, capsize=3, lw=1.2, label=simlab)
        ax.set_title(f"task {name}")
        ax.set_xlabel(res.key)
        ax.set_ylabel("Δ = gen_error(single) − gen_error(multitask)")
        if ticks is not None:
            ax.set_xticks(x_line, ticks)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    return _save(fig, f"{setup_name}: multitask benefit against {res.key} (> 0: sharing helps)",
                 path)


def _t(t) -> str:
    return "—" if t is None else f"{t:g}"


def _f(v, digits=4):
    return "—" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) and math.isfinite(v)
                                  else str(v))


def write_curve_report(setup, res: CurveValidation, out_dir) -> Path:
    """Write report.md, results.json, curve.csv, theory_line.csv, gen_error.png and (with
    baselines) benefit.png into ``out_dir``; return the path of report.md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gen_png = plot_curve(setup.name, res, out / "gen_error.png")
    ben_png = plot_curve_benefit(setup.name, res, out / "benefit.png")
    if ben_png is None and (out / "benefit.png").exists():
        (out / "benefit.png").unlink()   # a stale plot from an earlier run would mislead
    points = [{"value": v, "theory": json_safe(p.theory.to_json_dict()),
               "simulation": json_safe(p.simulation.to_json_dict()),
               "comparison": p.comparison.to_dict()} for v, p in zip(res.values, res.points)]
    results = {"setup": setup.to_dict(), "key": res.key, "values": res.values, "points": points,
               "theory_line": res.line, "agrees": res.agrees, "verdict": res.verdict(),
               "run": res.notes}
    (out / "results.json").write_text(json.dumps(json_safe(results), indent=1, allow_nan=False)
                                      + "\n", encoding="utf-8")
    cols = ["quantity", "run", "task", "time", "theory", "simulation", "se", "z", "agrees"]
    with open(out / "curve.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([res.key] + cols)
        for r in res.rows:
            w.writerow([r["value"]] + [repr(r[c]) if isinstance(r[c], float) else r[c]
                                       for c in cols])
    secs = ["tasks"] + (["single"] if "single" in res.line else [])
    with open(out / "theory_line.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([res.key] + [f"{'multi' if s == 'tasks' else s}.{n}.gen_error"
                                for s in secs for n in res.line[s]])
        for i, v in enumerate(res.line["values"]):
            w.writerow([v] + [repr(float(res.line[s][n][i])) for s in secs for n in res.line[s]])

    theory_js = res.points[0].theory.to_json_dict()
    sim_js = res.points[0].simulation.to_json_dict()
    head = f"| {res.key} | quantity | run | task | t | theory | simulation | SE | z | agrees |"
    table = [head, "|---:|---|---|---|---:|---:|---:|---:|---:|:---:|"]
    for r in res.rows:
        table.append(f"| {r['value']} | {r['quantity']} | {r['run']} | {r['task']} | "
                     f"{_t(r['time'])} | "
                     f"{_f(r['theory'])} | {_f(r['simulation'])} | {_f(r['se'])} | "
                     f"{_f(r['z'], 2)} | {'yes' if r['agrees'] else '**NO**'} |")
    md = [f"# mtsp learning curve: {setup.name}", "", f"**Verdict: {res.verdict()}**", "",
          f"At each value of `{res.key}` ({', '.join(str(v) for v in res.values)}) the theory is "
          f"compared with the simulation: {res.points[0].comparison.criterion} per task, time and "
          "run, z = (theory − simulation) / SE.", "",
          "## Setup (the base; the varied key takes the values above)", "",
          _setup_summary(setup, sim_js, theory_js), "",
          "## Generalization error", "", f"![gen_error against {res.key}]({gen_png.name})", "",
          f"Lines: theory at {len(res.line['values'])} values of {res.key} (solid multitask, "
          "dashed single-task); points: simulation ± one SE.", ""]
    if ben_png is not None:
        md += ["## Multitask benefit Δ = gen_error(single) − gen_error(multitask)", "",
               f"![benefit]({ben_png.name})", ""]
    md += ["## Every comparison", "", *table, "",
           "## Files", "", "- `results.json`: the setup, every point's theory, simulation and "
           "comparison, and the theory line", "- `curve.csv` (every comparison), "
           "`theory_line.csv` (the theory line)",
           f"- `{gen_png.name}`" + (f", `{ben_png.name}`" if ben_png is not None else ""), ""]
    path = out / "report.md"
    path.write_text("\n".join(md), encoding="utf-8")
    return path
