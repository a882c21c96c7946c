"""The ``mtsp`` command line (console script ``mtsp`` → ``mtsp.cli:main``; also ``python -m mtsp``).

    mtsp solve SETUP [--engine ode|reference|replica|dmft] [--single] [--json] [--processes 1|2]
    mtsp simulate SETUP [--N 2000] [--seeds 8] [--device cpu|cuda] [--single] [--json]
    mtsp validate SETUP [--N 1000] [--seeds 8] [--device cpu|cuda] [--out DIR] [--no-single]
                  [--vary KEY=VALUES [--theory-points K]]
    mtsp demo [--out DIR] [--N 1000] [--seeds 8] [--device cpu|cuda]
    mtsp derive SETUP [--engine ode|replica|dmft] --out DIR
    mtsp sweep SETUP --vary KEY=VALUES [--vary ...] [--at T] [--engine ...] [--json] [--out DIR]
               [--jobs N] [--scheduler tcp://...]
    mtsp ridge SETUP [--vary KEY=VALUES] [--task NAME] [--bounds LO,HI] [--json] [--out DIR]

Results go to stdout (``--json``: one MODEL.md JSON object; else a readable table), progress and
diagnostics to stderr. Errors are the classes of `mtsp.errors` and print one line
``mtsp: error: <key>: <reason>`` to stderr: an invalid setup (SetupError), option (RequestError)
or a valid setup outside the engines' reach (ReachError, e.g. a protocol not implemented yet)
exit with status 2 — the setup and the request are checked before anything is computed; a
solver that did not converge (ConvergenceError) adds its residual and exits with status 3. Any
other exception is a bug and shows its traceback. ``validate`` and ``demo`` exit with 0 when
theory and simulation agree and 1 when they disagree.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from .errors import ConvergenceError, MtspError, ReachError, RequestError, exit_status
from .files import check_out, staged
from .validate.validation import check_simulation
from .validate.validation import check_simulator as _check_simulator  # noqa: F401
from .progress import Progress, progress_enabled
from .jsonable import json_safe as _clean

__all__ = ["main", "build_parser"]

DEMO_N = 1000
DEMO_SEEDS = 8

# ----------------------------------------------------------------------------------------------
# helpers

def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v



def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(_clean(obj), allow_nan=False) + "\n")
    sys.stdout.flush()


def _diag(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _load(path):
    from .setup import load_setup
    return load_setup(path)


def _check_protocol(setup, engine: str | None = None) -> str:
    """The theory engine of the setup (`numeric.solve.check_protocol`: refused where its protocol has
    none, or `engine` is another protocol's); `mtsp simulate` runs every protocol."""
    from .numeric.solve import check_protocol
    return check_protocol(setup, engine)


def _fmt(v, se=None) -> str:
    if v is None:
        return "—"
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    s = f"{v:.4f}"
    if se is not None:
        try:
            se = float(se)
            if math.isfinite(se):
                s += f" ± {se:.4f}"
        except (TypeError, ValueError):
            pass
    return s


def _table(js: dict, title: str) -> str:
    """A readable rendering of a MODEL.md JSON object (theory or simulation)."""
    times = js.get("times")
    times = [None] if times is None else times
    out = [title]
    sections = [("tasks", "multitask")] + ([("single", "single-task baseline")]
                                           if isinstance(js.get("single"), dict) else [])
    for key, label in sections:
        for name, d in js[key].items():
            has_se = d.get("gen_error_se") is not None
            w = 19 if has_se else 10
            out.append("")
            out.append(f"task {name} ({label})")
            out.append(f"  {'t':>6}  {'gen_error':>{w}}  {'label_error':>11}  {'test_loss':>9}")
            for i, t in enumerate(times):
                ge = d["gen_error"][i]
                se = d["gen_error_se"][i] if has_se else None
                ts = "—" if t is None else f"{t:g}"
                out.append(f"  {ts:>6}  {_fmt(ge, se):>{w}}  {_fmt(d['label_error'][i]):>11}  "
                           f"{_fmt(d['test_loss'][i]):>9}")
            if "best_gen_error" in d:
                out.append(f"  early-stopped: gen_error {_fmt(d.get('best_gen_error'))} at t = "
                           f"{_fmt_t(d.get('best_gen_error_time'))}, test_loss "
                           f"{_fmt(d.get('best_test_loss'))} at t = "
                           f"{_fmt_t(d.get('best_test_loss_time'))}")
    if isinstance(js.get("single"), dict):
        out.append("")
        out.append("multitask benefit Δ = gen_error(single) − gen_error(multitask):")
        for name, d in js["tasks"].items():
            s = js["single"].get(name)
            if s is None:
                continue
            vals = ", ".join(
                f"t={'—' if t is None else f'{t:g}'}: {s['gen_error'][i] - d['gen_error'][i]:+.4f}"
                for i, t in enumerate(times)
                if s["gen_error"][i] is not None and d["gen_error"][i] is not None)
            out.append(f"  {name}: {vals}")
    return "\n".join(out) + "\n"


def _fmt_t(t) -> str:
    return "—" if t is None else f"{float(t):.3g}"


# ----------------------------------------------------------------------------------------------
# the computations, shared by the commands

def _theory(setup, single: bool, show: bool, engine: str | None = None, **precision):
    from .api import solve   # derive, then numeric
    with Progress("theory", enabled=show) as p:
        res = solve(setup, single=single, progress=p, engine=engine, **precision)
    return res


def _simulation(setup, N, seeds, device, single: bool, show: bool):
    from .validate.simulate import simulate, simulate_with_single
    fn = simulate_with_single if single else simulate
    with Progress("simulation", enabled=show) as p:
        res = fn(setup, N=N, seeds=seeds, device=device, progress=p,
                 report=lambda note: p(0.0, note))   # the full_batch step check's lines
    return res


def _run_validation(setup, *, N, seeds, device, out, single, quiet):
    """validate/demo: `mtsp.validate.validate` (checks everything, then theory, simulation,
    report). Returns the exit code."""
    from .validate import validate
    show = progress_enabled(False, quiet=quiet)
    v = validate(setup, N=N, seeds=seeds, device=device, out=out, single=single, show_progress=show)
    if show:
        _diag(f"theory {v.seconds['theory']:.1f} s, simulation {v.seconds['simulation']:.1f} s, "
              f"report {v.seconds['report']:.1f} s")
    print(f"report: {v.report}")
    print(v.verdict())
    return 0 if v.agrees else 1


# ----------------------------------------------------------------------------------------------
# the commands

def cmd_solve(args) -> int:
    setup = _load(args.setup)
    _check_protocol(setup, args.engine)
    show = progress_enabled(args.json, quiet=args.quiet)
    if args.mp_nodes is not None and args.precision != "mp":
        raise RequestError("--mp-nodes", "applies to --precision mp only")
    res = _theory(setup, args.single, show, args.engine, precision=args.precision, dps=args.dps,
                  accuracy=args.accuracy, mp_nodes=args.mp_nodes, processes=args.processes)
    js = res.to_json_dict()
    if args.json:
        _print_json(js)
    else:
        sys.stdout.write(_table(_clean(js), f"{js['setup']}: theory (N → ∞), engine "
                                            f"{js['engine']}, protocol {js['protocol']}"))
    stats = getattr(res, "stats", None)
    if stats and show:
        _diag("theory stats: " + ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}"
                                           for k, v in stats.items()))
    return 0


def cmd_check(args) -> int:
    from .api import check
    from .numeric.check import format_report
    setup = _load(args.setup)
    engine = _check_protocol(setup)
    if engine == "replica" and not args.trajectory:
        from .numeric.check import check_erm
        rep = check_erm(setup, dps=args.dps, nodes=args.mp_nodes, accuracy=args.accuracy)
        rep["accuracy"] = args.accuracy
        _print_json(rep) if args.json else sys.stdout.write(format_report(rep) + "\n")
        return 0
    if engine not in ("ode", "reference"):
        raise ReachError("training.protocol", f"mtsp check{' --trajectory' if args.trajectory else ''} "
                         f"compares the online engine's double and mp paths (and the erm fixed point's, "
                         f"without --trajectory); the {setup.training.protocol!r} protocol has no mp path yet")
    if not args.quiet:
        from .numeric.check import expected_text, threshold
        from .numeric.model import theory_model
        model = theory_model(setup)
        _diag(f"check: {args.states} state(s) in double and mp (dps {args.dps}); expected "
              f"{expected_text(model, args.states, not args.no_errors)} on 2 cores; each term passes at a relative "
              f"difference ≤ {threshold(model, args.accuracy):.0e}")
    bar = Progress("check", enabled=progress_enabled(args.json, quiet=getattr(args, "quiet", False)))
    if args.trajectory:
        from .api import certify
        from .numeric.certify import format_certificate
        try:
            cert = certify(setup, states=args.states, dps=args.dps, nodes=args.mp_nodes, accuracy=args.accuracy,
                           progress=bar)
        finally:
            bar.close()
        if args.json:
            _print_json(cert)
        else:
            print(format_certificate(cert))
        return 0
    try:
        rep = check(setup, dps=args.dps, states=args.states, errors=not args.no_errors, progress=bar,
                    acc=args.accuracy, mp_nodes=args.mp_nodes)
    finally:
        bar.close()
    rep["accuracy"] = args.accuracy
    if args.json:
        _print_json(rep)
    else:
        sys.stdout.write(format_report(rep) + "\n")
    return 0


def cmd_simulate(args) -> int:
    setup = _load(args.setup)
    check_simulation(setup, N=args.N, seeds=args.seeds, device=args.device)
    show = progress_enabled(args.json, quiet=args.quiet)
    res = _simulation(setup, args.N, args.seeds, args.device, args.single, show)
    js = res.to_json_dict()
    if args.json:
        _print_json(js)
    else:
        sys.stdout.write(_table(_clean(js), f"{js['setup']}: simulation, N = {args.N}, "
                                            f"{args.seeds} seeds, protocol {js['protocol']} "
                                            f"(± standard error over seeds)"))
    return 0


def _vary(specs) -> dict:
    """--vary KEY=VALUES options → {KEY: [values]} (`numeric.sweep.parse_vary`)."""
    from .numeric.sweep import parse_vary
    vary = {}
    for spec in specs or []:
        key, values = parse_vary(spec)
        if key in vary:
            raise RequestError(key, "varied twice")
        vary[key] = values
    return vary


def cmd_validate(args) -> int:
    setup = _load(args.setup)
    out = args.out or f"mtsp-report-{Path(args.setup).stem}"
    if not args.vary:
        if args.theory_points is not None:
            raise RequestError("--theory-points", "applies to a learning curve (--vary) only")
        return _run_validation(setup, N=args.N, seeds=args.seeds, device=args.device, out=out,
                               single=not args.no_single, quiet=args.quiet)
    from .validate.curves import validate_curve
    show = progress_enabled(False, quiet=args.quiet)
    v = validate_curve(setup, _vary(args.vary), N=args.N, seeds=args.seeds, device=args.device,
                       single=not args.no_single, out=out, theory_points=args.theory_points,
                       show_progress=show)
    if show:
        _diag(f"validate {v.seconds['validate']:.1f} s at {len(v.values)} points, theory line "
              f"{v.seconds['theory_line']:.1f} s, report {v.seconds['report']:.1f} s")
    print(f"report: {v.report}")
    print(v.verdict())
    return 0 if v.agrees else 1


def cmd_demo(args) -> int:
    from .setup import default_setup
    setup = default_setup()
    if not args.quiet:
        _diag(f"mtsp demo: '{setup.name}' — theory (N → ∞) against simulation (N = {args.N}, "
              f"{args.seeds} seeds), with single-task baselines; report in {args.out}/")
    return _run_validation(setup, N=args.N, seeds=args.seeds, device=args.device, out=args.out,
                           single=True, quiet=args.quiet)


def cmd_derive(args) -> int:
    from .derive import derive
    setup = _load(args.setup)
    _check_protocol(setup, getattr(args, "engine", None))   # an engine that can solve it (e.g. no relu DMFT)
    for p in derive(setup, out=args.out, engine=getattr(args, "engine", None)).paths:
        print(p)
    return 0


def cmd_sweep(args) -> int:
    """Parameter sweep of the multitask benefit (mtsp.api.sweep: derive, then numeric.sweep; plots:
    mtsp.validate.maps)."""
    from .api import sweep
    setup = _load(args.setup)
    vary = _vary(args.vary)
    out = check_out(args.out) if args.out else None   # written whole at the end (`staged`)
    if args.scheduler is not None and args.jobs is not None:
        raise RequestError("jobs", "--jobs sets local worker processes; with --scheduler the Dask "
                           "cluster decides")
    show = progress_enabled(args.json, quiet=args.quiet)
    n = 1
    for v in vary.values():
        n *= len(v)

    def skip(point, msg):
        _diag(f"mtsp: skipped point {', '.join(f'{k}={v}' for k, v in point.items())}: {msg}")
    with Progress("sweep", enabled=show) as p:
        res = sweep(setup, vary, at=args.at, engine=args.engine, jobs=args.jobs,
                    scheduler=args.scheduler, progress=p, on_skip=skip,
                    on_estimate=None if args.quiet else _diag)
    if not args.quiet:
        st = res.stats
        _diag(f"sweep: {st['valid_points']} of {n} points ({st['skipped_points']} skipped), "
              f"{st['multi_solves']} multitask + {st['single_solves']} single-task solves on "
              f"{st['executor']} in {st['wall_s']:.1f} s")
    from .validate.maps import write_sweep
    _emit(res, args.json, _sweep_table, out, write_sweep)
    return 0


def _emit(res, as_json: bool, table, out: Path | None, writer) -> None:
    """Print `res` (its JSON, or ``table(res)``) and, with `out`, write ``writer(res, folder)``'s
    files into `out` whole (`staged`), naming each one written (on stderr when stdout carries
    JSON)."""
    if as_json:
        _print_json(res.to_json_dict())
    else:
        sys.stdout.write(table(res))
    if out is None:
        return
    with staged(out) as tmp:
        written = writer(res, tmp)
    for path in written:
        print(f"wrote {out / Path(path).name}", file=sys.stderr if as_json else sys.stdout)


def _bounds(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two numbers), got {text!r}") from None
    return lo, hi


def cmd_ridge(args) -> int:
    """The ridge minimising gen_error at each value of one key (mtsp.numeric.ridge)."""
    from .numeric.ridge import ridge_curve
    setup = _load(args.setup)
    vary = _vary(args.vary)
    out = check_out(args.out) if args.out else None   # written whole at the end (`staged`)
    show = progress_enabled(args.json, quiet=args.quiet)
    with Progress("ridge", enabled=show) as p:
        res = ridge_curve(setup, vary, task=args.task, bounds=args.bounds, xtol=args.xtol,
                          jobs=args.jobs, progress=p)
    for r in res.rows:
        if r["at_bound"]:
            where = "" if res.key is None else f"at {res.key} = {r['value']} "
            _diag(f"mtsp: note: {where}the minimum sits at the {r['at_bound']} end of the search "
                  f"interval [{res.bounds[0]:g}, {res.bounds[1]:g}] (ridge {r['ridge']:.3g}): the "
                  f"optimal ridge lies at or beyond it (gen_error still falls towards that end); "
                  f"widen --bounds")
    if not args.quiet:
        _diag(f"ridge: {res.stats['points']} point(s), {res.stats['evaluations']} replica solves "
              f"in the searches, on {res.stats['executor']} in {res.stats['wall_s']:.1f} s")
    from .validate.ridge_plot import write_ridge
    _emit(res, args.json, _ridge_table, out, write_ridge)
    return 0


def _ridge_table(res) -> str:
    k = res.key or "point"
    names = list(res.rows[0]["tasks"])
    w = max(len(k), 8)
    lines = [f"{res.base.get('name', '')}: the ridge λ* minimising the {res.objective} (replica "
             f"theory; search over [{res.bounds[0]:g}, {res.bounds[1]:g}], ±{res.xtol:g} in log λ)",
             "", "  ".join([f"{k:>{w}}", f"{'ridge λ*':>16}", f"{'gen_error':>10}"]
                           + [f"{'task ' + n:>10}" for n in names]
                           + [f"{'at λ = ' + format(res.rows[0]['ridge0'], 'g'):>12}",
                              f"{'solves':>6}"])]
    for r in res.rows:
        v = "—" if r["value"] is None else (f"{r['value']:.6g}" if isinstance(r["value"], float)
                                           else str(r["value"]))
        lam = f"{r['ridge']:.4g}" + {"lower": " (≤, bound)", "upper": " (≥, bound)"}.get(
            r["at_bound"], "")
        lines.append("  ".join([f"{v:>{w}}", f"{lam:>16}", f"{r['gen_error']:>10.4f}"]
                               + [f"{r['tasks'][n]:>10.4f}" for n in names]
                               + [f"{r['gen_error0']:>12.4f}", f"{r['evaluations']:>6}"]))
    return "\n".join(lines) + "\n"


def _sweep_table(res) -> str:
    at = "" if res.at is None else f" at t = {res.at:g}"
    lines = [f"{res.base.get('name', '')}: multitask benefit{at} (engine {res.engine}); "
             "Δ = gen_error(single) − gen_error(multi), > 0: sharing helps", ""]
    head = [f"{k:>{max(len(k), 8)}}" for k in res.keys]
    for t in res.tasks:
        head += [f"{'multi ' + t:>12}", f"{'single ' + t:>12}", f"{'Δ ' + t:>10}"]
    lines.append("  ".join(head))
    for r in res.records:
        row = [f"{(f'{r[k]:.6g}' if isinstance(r[k], float) else r[k])!s:>{max(len(k), 8)}}"
               for k in res.keys]
        for t in res.tasks:
            row += [f"{r['multi'][t]['gen_error']:>12.4f}", f"{r['single'][t]['gen_error']:>12.4f}",
                    f"{r['benefit'][t]:>+10.4f}"]
        lines.append("  ".join(row))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtsp",
        description="Statistical-physics theory of (multitask) neural classifiers: solve the "
                    "N → ∞ theory of a setup, simulate it at finite N, and compare the two.")
    parser.add_argument("--version", action="version",
                        version=f"mtsp {__import__('mtsp').__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def sim_opts(p, n_default, seeds_default):
        p.add_argument("--N", type=_positive_int, default=n_default,
                       help=f"input dimension of the simulations (default {n_default})")
        p.add_argument("--seeds", type=_positive_int, default=seeds_default,
                       help=f"independent runs averaged over (default {seeds_default})")
        p.add_argument("--device", default="cpu",
                       help="torch device for the simulations: cpu or cuda (default cpu)")

    p = sub.add_parser("solve", parents=[common], help="the N → ∞ theory of a setup",
                       description="Solve the theory (N → ∞) of SETUP and print MODEL.md's "
                                   "predictions.")
    p.add_argument("setup", metavar="SETUP", help="setup file (TOML, see examples/)")
    p.add_argument("--engine", choices=["ode", "reference", "replica", "dmft"], default=None,
                   help="theory engine (default: the protocol's): ode = the generated module of the "
                        "setup's structure (SymPy closed forms + quadrature); reference = the "
                        "hand-written right-hand side (a cross-check); replica = the erm fixed point; dmft = full_batch dynamics")
    p.add_argument("--single", action="store_true", help="add single-task baselines")
    p.add_argument("--json", action="store_true", help="print one JSON object (MODEL.md schema)")
    p.add_argument("--precision", choices=["double", "mp"], default="double",
                   help="mp: online — the whole ODE in mpmath (C ≤ 3; linear trunks/glm, nonlinear "
                        "trunks with K ≤ 3; slow: it prints its quadrature points and the time of "
                        "each right-hand side); erm — the double fixed point polished by Newton "
                        "steps of the mpmath fixed-point map (every setup the double solves; C ≥ 4 and "
                        "coupled tasks on shared inputs with Σ(C_t − 1) ≥ 3 on a short QMC rule of "
                        "--mp-nodes points, the double re-solved on it)")
    p.add_argument("--dps", type=_positive_int, default=30, help="mp digits (default 30)")
    p.add_argument("--mp-nodes", type=_positive_int, default=None,
                   help="mp: quadrature nodes per integrated dimension (default 24; the cost grows "
                        "as nodes^dim, the accuracy of its integrals with nodes)")
    p.add_argument("--accuracy", choices=["default", "high", "fast"], default="default",
                   help="high: larger quadrature budgets and tight ODE tolerances (≤ 1e-7 vs mp); fast: smaller ones for exploration (errors ≲ 1e-3)")
    p.add_argument("--processes", type=int, choices=[1, 2], default=None,
                   help="2 = a forked second process shares every right-hand side and the metrics "
                        "(mp: the larger integrals; default where there are 2+ cores); same numbers")
    p.set_defaults(func=cmd_solve)

    p = sub.add_parser("check", parents=[common], help="double vs mpmath right-hand side, per term",
                       description="Evaluate the right-hand side at a few states of the solved "
                                   "trajectory of SETUP in double and in mpmath precision and print "
                                   "the largest relative difference per term.")
    p.add_argument("setup", metavar="SETUP")
    p.add_argument("--dps", type=_positive_int, default=30, help="mp digits (default 30)")
    p.add_argument("--states", type=_positive_int, default=3, help="states of the trajectory (default 3)")
    p.add_argument("--mp-nodes", type=_positive_int, default=None,
                   help="mp quadrature nodes per integrated dimension (default: by dimension, 64 in 1 "
                        "down to 12 in 4; fewer are faster, and the mp side's own error grows)")
    p.add_argument("--accuracy", choices=["default", "high", "fast"], default="default",
                   help="the double path's quadrature budgets to check (those of solve --accuracy; "
                        "high includes the K = 3 cut rule for the errors)")
    p.add_argument("--trajectory", action="store_true",
                   help="certify the whole double trajectory instead: a bound on every printed gen_error "
                        "against the mp theory from the mp right-hand side at --states states (docs/PRECISION.md)")
    p.add_argument("--no-errors", action="store_true",
                   help="skip gen_error / label_error (mp errors of K = 3 trunks take minutes per task and state)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("simulate", parents=[common], help="finite-N simulations of a setup",
                       description="Simulate SETUP at finite N (torch), averaged over seeds.")
    p.add_argument("setup", metavar="SETUP")
    sim_opts(p, 2000, 8)
    p.add_argument("--single", action="store_true", help="add single-task baselines")
    p.add_argument("--json", action="store_true", help="print one JSON object (MODEL.md schema)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("validate", parents=[common], help="theory against simulation, with a report",
                       description="Solve the theory and simulate SETUP, compare them (4 SE + "
                                   "0.003 per value), and write report.md, results.json and "
                                   "plots. Exit status 0 when they agree, 1 when they do not.")
    p.add_argument("setup", metavar="SETUP")
    sim_opts(p, 1000, 8)
    p.add_argument("--out", default=None,
                   help="report folder (default mtsp-report-<setup file stem>)")
    p.add_argument("--no-single", action="store_true", help="skip the single-task baselines")
    p.add_argument("--vary", action="append", metavar="KEY=VALUES",
                   help="a learning curve: validate at each value of one key (the keys and values "
                        "of mtsp sweep, e.g. training.alpha=0.5,1,2,5) and plot gen_error against it")
    p.add_argument("--theory-points", type=int, default=None, metavar="K",
                   help="with --vary: K more theory values between the smallest and largest, for "
                        "the theory line (default 24 for erm, 0 otherwise)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("demo", parents=[common], help="validate the built-in demo setup",
                       description="validate on the built-in setup (two related tasks, one "
                                   "noisy; mtsp/data/default.toml, also "
                                   "examples/two_related_one_noisy.toml). About half a minute on "
                                   "two CPU cores.")
    p.add_argument("--out", default="mtsp-demo", help="report folder (default mtsp-demo)")
    sim_opts(p, DEMO_N, DEMO_SEEDS)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("derive", parents=[common], help="write the symbolic derivation of a setup",
                       description="Write the derivation of SETUP's theory into DIR.")
    p.add_argument("setup", metavar="SETUP")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--engine", choices=["ode", "replica", "dmft"], default=None,
                   help="whose equations (default: the protocol's; erm → replica, full_batch → dmft)")
    p.set_defaults(func=cmd_derive)

    p = sub.add_parser("sweep", parents=[common], help="map the multitask benefit over parameters",
                       description="Solve the theory at every point of a grid around SETUP and "
                                   "report the multitask and single-task gen_error of each task and "
                                   "the benefit Δ = gen_error(single) − gen_error(multi). Invalid "
                                   "points are reported on stderr and skipped.")
    p.add_argument("setup", metavar="BASE_SETUP", help="base setup file (TOML)")
    p.add_argument("--vary", action="append", required=True, metavar="KEY=VALUES",
                   help="a dotted key (teacher.alignment, tasks.<task>.noise, student.hidden, "
                        "training.lr, ...) and its values: a comma list (0,0.5,0.9) or "
                        "start:stop:count; repeat for a grid (first key slowest)")
    p.add_argument("--at", type=float, default=None, metavar="T",
                   help="the time at which to compare (default: the setup's last time; erm has "
                        "no time)")
    p.add_argument("--engine", choices=["ode", "reference", "replica", "dmft"], default=None,
                   help="theory engine (as for solve; default: the protocol's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write sweep.json, sweep.csv, the plot (benefit.png for one key, "
                        "benefit_map.png for two) and points/*.toml into DIR")
    p.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                   help="local worker processes (default: the number of CPUs)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the solves on a Dask distributed cluster (tcp://host:8786; needs "
                        "pip install \"mtsp[dask]\")")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("ridge", parents=[common], help="the ridge minimising gen_error (erm)",
                       description="Find the ridge λ* that minimises gen_error (erm protocol, replica "
                                   "theory) at each value of one key, by a bounded search in log λ; "
                                   "print a table and with --out write ridge.json, ridge.csv and "
                                   "ridge.png. A minimum at an end of the search interval is "
                                   "reported as such (the optimum lies beyond it).")
    p.add_argument("setup", metavar="SETUP", help="erm setup file (TOML)")
    p.add_argument("--vary", action="append", metavar="KEY=VALUES",
                   help="one key and its values, as for sweep (e.g. training.alpha=0.5,1,2,5); "
                        "default: the setup's own point")
    p.add_argument("--task", default=None, metavar="NAME",
                   help="minimise this task's gen_error (default: the mean over the tasks)")
    p.add_argument("--bounds", type=_bounds, default=(1e-3, 10.0), metavar="LO,HI",
                   help="the search interval of the ridge (default 0.001,10)")
    p.add_argument("--xtol", type=float, default=1e-3,
                   help="tolerance of the search in log ridge (default 0.001)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write ridge.json, ridge.csv and (with --vary) ridge.png into DIR")
    p.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                   help="local worker processes (default: the number of CPUs)")
    p.set_defaults(func=cmd_ridge)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like an interrupt: the same clean-up (workers stopped,
    partial outputs removed), exit status 143."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    """Run the command line; returns the exit status (the console script exits with it):
    130 after an interrupt (SIGINT), 143 after SIGTERM, workers stopped either way."""
    parser = build_parser()
    args = parser.parse_args(argv)
    import signal
    import warnings
    warnings.formatwarning = lambda message, category, *a, **k: f"mtsp: warning: {message}\n"
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:   # not the main thread: SIGTERM keeps its handler
        previous = None
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as e:
        _diag("\nmtsp: terminated" if isinstance(e, Terminated) else "\nmtsp: interrupted")
        return 143 if isinstance(e, Terminated) else 130
    except MtspError as e:  # anything else is a bug: its traceback shows
        _diag(f"mtsp: error: {error_line(e)}")
        return exit_status(e)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def error_line(e: MtspError) -> str:
    """The one line the command line prints for `e` (after "mtsp: error: "): "key: reason", and
    for a solver that did not converge its residual."""
    if isinstance(e, ConvergenceError) and e.residual is not None:
        return f"{e} (residual {e.residual:.3g})"
    return str(e)


if __name__ == "__main__":
    sys.exit(main())
