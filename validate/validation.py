"""`validate(setup, ...)`: theory against simulation, with a report — what ``mtsp validate`` runs.

Everything is checked before anything is computed (the protocol, the simulator and its device,
N ≥ rank(T) + K and seeds ≥ 2, the report folder); then the theory (`numeric.solve.solve`), the simulation
(`simulate.simulate`, or `simulate_with_single` with the single-task baselines), the comparison
(`compare.compare`: 4 standard errors + 0.003 per value) and, given a folder, the report
(`report.write_report`: report.md, results.json, plots).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RequestError
from ..files import check_out, staged
from ..jsonable import json_safe
from ..progress import Progress
from .compare import Comparison, compare

__all__ = ["Validation", "validate", "check_simulator", "check_simulation", "min_dimension"]


@dataclass
class Validation:
    """The outcome of `validate`: the theory (`SolveResult`) and simulation (`SimulationResult`)
    results, their `Comparison`, the report's path (None without a folder), the run's notes as
    written to results.json, and the seconds of each stage."""
    setup_name: str
    theory: object
    simulation: object
    comparison: Comparison
    report: Path | None = None
    notes: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        return self.comparison.agrees

    def verdict(self) -> str:
        return self.comparison.verdict()


def check_simulator(device: str) -> None:
    """Everything a simulation needs (torch, and CUDA for a cuda device): RequestError if not."""
    try:
        import torch   # an optional dependency (pip install ".[sim]"): checked, not required
    except ImportError:
        raise RequestError("simulate", "the simulator needs torch; install it with "
                                       "pip install \".[sim]\"") from None
    try:
        import mtsp.validate.simulate  # noqa: F401
    except ImportError as e:
        raise RequestError("simulate", f"the simulator is not available ({e})") from None
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RequestError("device", f"{device!r} requested but CUDA is not available here "
                                     "(use --device cpu)")


def min_dimension(setup) -> int:
    """The smallest input dimension a simulation of `setup` can have: rank(T) + K (the teacher's
    features and the student's initial weights are drawn orthogonal in R^N; K = M for glm)."""
    import numpy as np
    g = np.asarray(setup.gram(), float)
    g = 0.5 * (g + g.T)
    e = np.linalg.eigvalsh(g)
    rank = int((e > 1e-12 * max(1.0, float(np.abs(e).max()))).sum())
    st = setup.student
    return rank + (setup.M if st.kind == "glm" else int(st.hidden))


def check_simulation(setup, *, N: int, seeds: int, device: str, standard_error: bool = False) -> None:
    """Everything a simulation of `setup` needs, checked before it runs: the simulator and its
    device (`check_simulator`), N ≥ rank(T) + K, and with `standard_error` (a comparison with
    the theory) seeds ≥ 2 — one seed has no standard error.  RequestError naming the option."""
    check_simulator(device)
    for key, v in (("N", N), ("seeds", seeds)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise RequestError(key, f"expected a positive integer, got {v!r}")
    need = min_dimension(setup)
    if N < need:
        raise RequestError("N", f"{N} is too small for this setup: need N >= rank(T) + K = {need}")
    if standard_error and seeds < 2:
        raise RequestError("seeds", f"{seeds} seed has no standard error, and the comparison with "
                           "the theory needs one: use --seeds 2 or more (8 by default)")


def validate(setup, *, N: int = 1000, seeds: int = 8, device: str = "cpu", single: bool = True,
             out=None, show_progress: bool = False) -> Validation:
    """Solve the theory of `setup`, simulate it at input dimension `N` over `seeds` seeds on
    `device` (with `single`: the single-task baselines too), compare, and with `out` write the
    report into that folder.  Raises ReachError / RequestError before anything runs."""
    from ..api import solve   # the back-ends load when asked for (derive, then numeric)
    from ..numeric.solve import check_protocol
    check_protocol(setup)
    check_simulation(setup, N=N, seeds=seeds, device=device, standard_error=True)
    folder = None if out is None else check_out(out)   # written whole at the end (`staged`)
    from .simulate import simulate, simulate_with_single
    t0 = time.perf_counter()
    with Progress("theory", enabled=show_progress) as p:
        theory = solve(setup, single=single, progress=p)
    t1 = time.perf_counter()
    with Progress("simulation", enabled=show_progress) as p:
        sim = (simulate_with_single if single else simulate)(setup, N=N, seeds=seeds, device=device,
                                                             progress=p,
                                                             report=lambda note: p(0.0, note))
    t2 = time.perf_counter()
    theory_js, sim_js = json_safe(theory.to_json_dict()), json_safe(sim.to_json_dict())
    cmp = compare(theory_js, sim_js)
    notes = {"theory_s": round(t1 - t0, 2), "simulation_s": round(t2 - t1, 2),
             "N": N, "seeds": seeds, "device": device, "single": single,
             "theory_stats": json_safe(getattr(theory, "stats", {}) or {})}
    result = Validation(setup.name, theory, sim, cmp, notes=notes,
                        seconds={"theory": t1 - t0, "simulation": t2 - t1})
    if folder is not None:
        from .report import write_report   # matplotlib: only when a report is written
        curves = theory.curves() if theory_js.get("times") is not None else None
        with staged(folder) as tmp:
            written = write_report(setup, theory_js, sim_js, tmp, comparison=cmp, notes=notes,
                                   curves=json_safe(curves) if curves else None)
        result.report = folder / Path(written).name
        result.seconds["report"] = time.perf_counter() - t2
    return result
