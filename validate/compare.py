"""Theory against simulation: z-scores and the agreement criterion (../shared/MODEL.md).

``compare(theory_json, sim_json)`` takes the two MODEL.md JSON objects — ``mtsp solve --json`` and
``mtsp simulate --json`` (or ``SolveResult.to_json_dict()`` / ``SimulationResult.to_json_dict()``)
— and compares, for every task and every reported time,

* ``gen_error`` of the multitask run (``"tasks"``) and, where both objects carry one, of the
  single-task baselines (``"single"``);
* the multitask benefit Δ_t = gen_error(single) − gen_error(multitask), theory against
  simulation, with SE(Δ) = sqrt(SE_single² + SE_multi²) (conservative: the simulator draws the
  single-task runs from the same seeds, which correlates them positively with the multitask run).

Each comparison has z = (theory − simulation) / SE and agrees when

    |theory − simulation| ≤ n_se · SE + floor          (default 4 standard errors + 0.003).

SE is the simulation's standard error over seeds (``gen_error_se``), combined in quadrature with
the theory's own quadrature error where the theory reports one (``gen_error_quad_se``, randomised
rules for nonlinear trunks) and its sampling error (``gen_error_se``, engines that sample paths:
dmft). ``Comparison.agrees`` is true when every row agrees. The early-stopped
values (``best_gen_error`` and the early-stopped benefit) are listed for information in
``Comparison.early_stopped`` but not tested: the simulation reports no standard error for them and
its minimum over a noisy curve is biased low.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from mtsp.errors import RequestError

__all__ = ["Comparison", "compare"]

RUNS = (("tasks", "multitask"), ("single", "single"))


def _num(v):
    """float(v), or None when v is missing or not finite."""
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _at(d: dict, key: str, i: int):
    seq = d.get(key)
    if seq is None:
        return None
    if not isinstance(seq, (list, tuple)):
        return _num(seq) if i == 0 else None
    return _num(seq[i]) if i < len(seq) else None


def _row(quantity, run, task, time, theory, sim, se, n_se, floor):
    row = {"quantity": quantity, "run": run, "task": task, "time": time,
           "theory": theory, "simulation": sim, "se": se, "diff": None, "z": None,
           "tolerance": None, "agrees": False}
    if theory is None or sim is None:
        return row
    diff = theory - sim
    se_ = 0.0 if se is None else se
    tol = n_se * se_ + floor
    if se_ > 0:
        z = diff / se_
    else:
        z = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    row.update(diff=diff, z=z, tolerance=tol, agrees=bool(abs(diff) <= tol))
    return row


def _quad(*ses):
    """Root sum of squares of the known standard errors (None if none is known)."""
    known = [s for s in ses if s is not None]
    return math.sqrt(sum(s * s for s in known)) if known else None


def _fmt(v, digits=4):
    if v is None:
        return "—"
    if isinstance(v, float) and math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return f"{v:.{digits}f}"


def _fmt_time(t):
    if t is None:
        return "—"
    return f"{t:g}"


@dataclass
class Comparison:
    """Result of ``compare``: ``rows`` (one dict per tested value), ``early_stopped``
    (informational rows) and the criterion parameters ``n_se`` and ``floor``.

    Row keys: quantity ("gen_error" | "benefit"), run ("multitask" | "single"; "single − multitask"
    for the benefit), task, time, theory, simulation, se, diff (theory − simulation), z, tolerance
    (n_se·se + floor), agrees.
    """
    rows: list
    n_se: float = 4.0
    floor: float = 0.003
    early_stopped: list = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return bool(self.rows) and all(r["agrees"] for r in self.rows)

    @property
    def failures(self) -> list:
        return [r for r in self.rows if not r["agrees"]]

    @property
    def max_abs_z(self) -> float | None:
        zs = [abs(r["z"]) for r in self.rows if r["z"] is not None]
        return max(zs) if zs else None

    @property
    def criterion(self) -> str:
        return f"|theory − simulation| ≤ {self.n_se:g} SE + {self.floor:g}"

    @staticmethod
    def describe(row: dict) -> str:
        """One row in words, e.g. 'multitask gen_error of task A at t = 2: theory 0.4100,
        simulation 0.3800 ± 0.0020 (z = 15.0)'."""
        what = ("benefit Δ" if row["quantity"] == "benefit"
                else f"{row['run']} {row['quantity']}")
        z = "—" if row["z"] is None else (_fmt(row["z"], 1))
        return (f"{what} of task {row['task']} at t = {_fmt_time(row['time'])}: "
                f"theory {_fmt(row['theory'])}, simulation {_fmt(row['simulation'])} "
                f"± {_fmt(row['se'])} (z = {z})")

    def verdict(self, max_listed: int = 3) -> str:
        """The one-line verdict: 'Theory and simulation agree (max |z| = …)' or 'DISAGREE at …'."""
        mz = self.max_abs_z
        mz_s = "—" if mz is None else _fmt(mz, 2)
        if not self.rows:
            return "Nothing to compare: no gen_error values in common."
        if self.agrees:
            return (f"Theory and simulation agree (max |z| = {mz_s} over {len(self.rows)} "
                    f"comparisons; criterion {self.criterion}).")
        bad = sorted(self.failures,
                     key=lambda r: -(abs(r["diff"]) - r["tolerance"]) if r["diff"] is not None
                     else -math.inf)
        listed = "; ".join(self.describe(r) for r in bad[:max_listed])
        more = f"; and {len(bad) - max_listed} more" if len(bad) > max_listed else ""
        return (f"Theory and simulation DISAGREE at {len(bad)} of {len(self.rows)} comparisons "
                f"(criterion {self.criterion}): {listed}{more}.")

    def table(self, quantity: str = "gen_error") -> str:
        """Markdown table of the rows of one quantity ("gen_error" or "benefit")."""
        rows = [r for r in self.rows if r["quantity"] == quantity]
        if not rows:
            return ""
        if quantity == "benefit":
            head = ("| task | t | Δ theory | Δ simulation | SE | z | agrees |\n"
                    "|---|---:|---:|---:|---:|---:|:---:|")
            lines = [f"| {r['task']} | {_fmt_time(r['time'])} | {_fmt(r['theory'])} | "
                     f"{_fmt(r['simulation'])} | {_fmt(r['se'])} | {_fmt(r['z'], 2)} | "
                     f"{'yes' if r['agrees'] else '**NO**'} |" for r in rows]
        else:
            head = ("| run | task | t | theory | simulation | SE | z | agrees |\n"
                    "|---|---|---:|---:|---:|---:|---:|:---:|")
            lines = [f"| {r['run']} | {r['task']} | {_fmt_time(r['time'])} | {_fmt(r['theory'])} | "
                     f"{_fmt(r['simulation'])} | {_fmt(r['se'])} | {_fmt(r['z'], 2)} | "
                     f"{'yes' if r['agrees'] else '**NO**'} |" for r in rows]
        return "\n".join([head, *lines])

    def early_table(self) -> str:
        if not self.early_stopped:
            return ""
        head = ("| quantity | run | task | theory | t* theory | simulation | t* simulation |\n"
                "|---|---|---|---:|---:|---:|---:|")
        lines = [f"| {r['quantity']} | {r['run']} | {r['task']} | {_fmt(r['theory'])} | "
                 f"{_fmt_time(r['theory_time'])} | {_fmt(r['simulation'])} | "
                 f"{_fmt_time(r['simulation_time'])} |" for r in self.early_stopped]
        return "\n".join([head, *lines])

    def to_markdown(self) -> str:
        """The verdict, the gen_error table, the benefit table (if any) and the early-stopped
        values, as Markdown."""
        parts = [f"**{self.verdict()}**", "", f"Criterion: {self.criterion}, z = (theory − "
                 f"simulation) / SE.", "", "### gen_error", "", self.table("gen_error")]
        if any(r["quantity"] == "benefit" for r in self.rows):
            parts += ["", "### Multitask benefit Δ = gen_error(single) − gen_error(multitask)", "",
                      self.table("benefit")]
        if self.early_stopped:
            parts += ["", "### Early-stopped values (for information, not tested)", "",
                      self.early_table()]
        return "\n".join(parts) + "\n"

    def to_dict(self) -> dict:
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return v
        return {"agrees": self.agrees, "verdict": self.verdict(), "n_se": self.n_se,
                "floor": self.floor, "max_abs_z": clean(self.max_abs_z),
                "rows": [{k: clean(v) for k, v in r.items()} for r in self.rows],
                "early_stopped": [{k: clean(v) for k, v in r.items()} for r in self.early_stopped]}


def _times(theory_json: dict, sim_json: dict) -> list:
    tt, ts = theory_json.get("times"), sim_json.get("times")
    if tt is None and ts is None:
        return [None]
    if tt is None or ts is None:
        raise RequestError("times", "one result has times and the other has none")
    tt, ts = [float(t) for t in tt], [float(t) for t in ts]
    if len(tt) != len(ts) or any(abs(a - b) > 1e-9 * max(1.0, abs(a)) for a, b in zip(tt, ts)):
        raise RequestError("times", f"theory reports {tt} but simulation {ts}")
    return tt


def compare(theory_json: dict, sim_json: dict, n_se: float = 4.0, floor: float = 0.003
            ) -> Comparison:
    """Compare a theory result with a simulation result (both MODEL.md JSON objects); see the
    module docstring. Raises RequestError ("times: …", "tasks.<name>: …") when they do not describe
    the same times and tasks, and ("seeds: …") for a simulation of one seed (no standard error)."""
    seeds = sim_json.get("seeds")
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds < 2:
        raise RequestError("seeds", f"the simulation has {seeds} seed and so no standard error; "
                           "a comparison needs 2 or more")
    times = _times(theory_json, sim_json)
    rows, early = [], []
    th_tasks, sim_tasks = theory_json.get("tasks") or {}, sim_json.get("tasks") or {}
    for name in th_tasks:
        if name not in sim_tasks:
            raise RequestError(f"tasks.{name}", "missing from the simulation results")
    for name in sim_tasks:
        if name not in th_tasks:
            raise RequestError(f"tasks.{name}", "missing from the theory results")
    names = list(th_tasks)

    sections = [(key, run) for key, run in RUNS
                if isinstance(theory_json.get(key), dict) and isinstance(sim_json.get(key), dict)]
    for key, run in sections:
        th_sec, sim_sec = theory_json[key], sim_json[key]
        for name in names:
            if name not in th_sec or name not in sim_sec:
                continue
            th, sim = th_sec[name], sim_sec[name]
            for i, t in enumerate(times):
                se = _quad(_at(sim, "gen_error_se", i), _at(th, "gen_error_quad_se", i),
                           _at(th, "gen_error_se", i))
                rows.append(_row("gen_error", run, name, t, _at(th, "gen_error", i),
                                 _at(sim, "gen_error", i), se, n_se, floor))
            early.append({"quantity": "best_gen_error", "run": run, "task": name,
                          "theory": _num(th.get("best_gen_error")),
                          "theory_time": _num(th.get("best_gen_error_time")),
                          "simulation": _num(sim.get("best_gen_error")),
                          "simulation_time": _num(sim.get("best_gen_error_time"))})

    if len(sections) == 2:
        th_m, sim_m = theory_json["tasks"], sim_json["tasks"]
        th_s, sim_s = theory_json["single"], sim_json["single"]
        for name in names:
            if not all(name in d for d in (th_s, sim_s)):
                continue
            for i, t in enumerate(times):
                a, b = _at(th_s[name], "gen_error", i), _at(th_m[name], "gen_error", i)
                c, d = _at(sim_s[name], "gen_error", i), _at(sim_m[name], "gen_error", i)
                d_th = None if a is None or b is None else a - b
                d_sim = None if c is None or d is None else c - d
                se = _quad(_at(sim_s[name], "gen_error_se", i), _at(sim_m[name], "gen_error_se", i),
                           _at(th_s[name], "gen_error_quad_se", i),
                           _at(th_m[name], "gen_error_quad_se", i),
                           _at(th_s[name], "gen_error_se", i), _at(th_m[name], "gen_error_se", i))
                rows.append(_row("benefit", "single − multitask", name, t, d_th, d_sim, se,
                                 n_se, floor))
            vals = [_num(x.get("best_gen_error")) for x in (th_s[name], th_m[name],
                                                            sim_s[name], sim_m[name])]
            early.append({"quantity": "best benefit", "run": "single − multitask", "task": name,
                          "theory": None if None in vals[:2] else vals[0] - vals[1],
                          "theory_time": None,
                          "simulation": None if None in vals[2:] else vals[2] - vals[3],
                          "simulation_time": None})
    return Comparison(rows=rows, n_se=float(n_se), floor=float(floor), early_stopped=early)
