"""The ``thermodl`` command line: log Z and thermodynamics of built-in models, sweeps, experiment reproduction.

    thermodl logz ising2d --L 16 --beta 0.44 --method ais
    thermodl thermo sk --n 12 --beta-min 0 --beta-max 2 --n-betas 21 --out sk.nc
    thermodl sweep experiments/configs/sk.toml --dry-run    # declarative sweep: grid, compile groups, memory
    thermodl reproduce exact-checks            # README's main job: every exact check, table + figure
    thermodl reproduce --list | --all

Errors (bad values, unknown names, missing files, bad options or configs) print ONE line ``error: ...`` on
stderr and exit with code 2, without a traceback; ``reproduce`` exits 1 when a check fails.

Reliability (the honesty contract, ``engine.reliability``): ``logz`` and ``thermo`` show a ``reliable`` column
(and ``reliable`` / ``reasons`` in ``--json``); an unreliable result prints one line ``NOT RELIABLE: ...: reasons``
on stderr, and with ``--strict`` the command exits with code 3 (after writing its outputs). Outputs are written
atomically (``engine.io``). Models are built by ``engine.catalog`` (shared with sweeps); the options of ``logz`` /
``thermo`` live in ``cli.options``, their estimator runs in ``cli.estimator_runs``, terminal output in
``cli.display``.

Seeds: ``--seed`` is the Monte Carlo seed and never changes the model; ``--disorder-seed`` (default 0) alone draws
the couplings, patterns and data of ``logz`` / ``thermo`` models. ``reproduce --seed`` is the one seed an
experiment derives all of its keys from.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from .. import catalog, registry
from ..io import write_netcdf
from ..validate import check_beta, check_choice
from .display import Progress, console, fmt, print_json, print_reliability, print_rows
from .estimator_runs import exact_log_partition, resolve_method, run_log_partition, run_thermodynamics
from .options import (ActivationOpt, AlphaOpt, ChainsOpt, ClassesOpt, CouplingsOpt, DataOpt, DisorderOpt, HOpt,
                      EXIT_UNRELIABLE, JOpt, JsonOpt, KappaOpt, KernelOpt, LOpt, LossOpt, MaxTimeOpt, ModelArg, MOpt,
                      NBetasOpt, NHidOpt, NOpt, NVisOpt, PatternsOpt, POpt, QuietOpt, SeedOpt, SigmaOpt, StepsOpt,
                      StrictOpt, TolOpt, UnitsOpt, WeightsOpt, WidthsOpt, _opt, model_options, parse_betas,
                      run_options)

__all__ = ["app", "main"]

METHODS = ("auto", "ais", "smc", "ti", "pt", "exact")
THERMO_METHODS = ("ti", "pt")

app = typer.Typer(
    name="thermodl",
    help="thermodl: Gibbs ensembles, Monte Carlo kernels and partition functions with honest error bars.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def build_model(model: str, disorder_seed: int, **flags) -> catalog.BuiltModel:
    """The model named on the command line (``catalog.build`` with messages naming the CLI flags).

    Only ``disorder_seed`` draws its disorder: the Monte Carlo ``--seed`` is not an argument here.
    """
    return catalog.build(model, model_options(**flags), disorder_seed=disorder_seed, flags=True)


@app.command()
def logz(
    model: ModelArg,
    beta: Annotated[float, _opt("--beta", "inverse temperature β ≥ 0.")],
    method: Annotated[str, _opt("--method", "auto, ais, smc, ti, pt or exact (auto: exact if known, else ais).",
                                show_default=True)] = "auto",
    seed: SeedOpt = 0,
    chains: ChainsOpt = None,
    steps: StepsOpt = None,
    n_betas: NBetasOpt = None,
    kernel: KernelOpt = "auto",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    strict: StrictOpt = False,
    tol: TolOpt = None,
    max_time: MaxTimeOpt = None,
    L: LOpt = None, M: MOpt = None, J: JOpt = None, h: HOpt = None,  # noqa: E741
    n: NOpt = None, p: POpt = None, alpha: AlphaOpt = None, kappa: KappaOpt = None, data: DataOpt = None,
    couplings: CouplingsOpt = None, weights: WeightsOpt = None, n_visible: NVisOpt = None,
    n_hidden: NHidOpt = None, units: UnitsOpt = None, patterns: PatternsOpt = None, sigma_w: SigmaOpt = None,
    classes: ClassesOpt = None, widths: WidthsOpt = None, activation: ActivationOpt = None, loss: LossOpt = None,
    disorder_seed: DisorderOpt = 0,
) -> None:
    """Estimate log Z(β) of a built-in MODEL with its standard error, and compare with the exact value when known.

    Shows whether the estimate is reliable (engine.reliability); --strict exits with code 3 when it is not.
    """
    beta = check_beta(beta, "--beta")
    method = check_choice("method", method, METHODS)
    built = build_model(model, disorder_seed, L=L, M=M, J=J, h=h, n=n, p=p, alpha=alpha, kappa=kappa, data=data,
                        couplings=couplings, weights=weights, n_visible=n_visible, n_hidden=n_hidden, units=units,
                        patterns=patterns, sigma_w=sigma_w, classes=classes, widths=widths, activation=activation,
                        loss=loss)
    budget = run_options(chains=chains, steps=steps, n_betas=n_betas)
    refine = {k: v for k, v in (("tol", tol), ("max_time", max_time)) if v is not None}
    for name, value in refine.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number > 0, got {value!r}")
    with Progress(not quiet and not json_out) as bar, warnings.catch_warnings():
        # the CLI prints its own reliability line; the estimators' RuntimeWarning would repeat it
        warnings.filterwarnings("ignore", message=".*not reliable", category=RuntimeWarning)
        t0 = time.perf_counter()
        label = f"{resolve_method(built.model, method).upper()} sampling"
        est = run_log_partition(built.model, beta, method=method, seed=seed, kernel=kernel,
                                progress=bar.steps(label), **budget, **refine)
        wall = time.perf_counter() - t0
    exact = exact_log_partition(built.model, beta)
    z = est.z_score(exact) if exact is not None and est.method != "exact" else None
    result = {
        "model": model, "model_options": built.options, "dim": built.dim, "beta": beta, "method": est.method,
        "estimate": est.value, "stderr": est.stderr, "exact": exact, "z": z, "log_Z0": built.log_z0,
        "wall_s": wall, "seed": seed, "disorder_seed": disorder_seed, "reliable": bool(est.reliable),
        "reasons": list(est.reasons), "diagnostics": est.diagnostics,
    }
    if json_out:
        print_json(result)
    else:
        from rich.table import Table

        table = Table(title=f"log Z of {built.label} at β = {beta:g}")
        for col in ("method", "estimate", "± stderr", "exact", "z", "reliable", "wall s"):
            table.add_column(col, justify="right" if col != "method" else "left")
        table.add_row(est.method, fmt(est.value), fmt(est.stderr, 2), fmt(exact),
                      "—" if z is None else f"{z:+.2f}", "yes" if est.reliable else "NO", f"{wall:.2f}")
        console().print(table)
    _finish_reliability(f"log Z [{est.method}] at β = {beta:g}", [] if est.reliable else list(est.reasons)
                        or ["flagged by the estimator"], strict)


def _finish_reliability(what: str, reasons: list[str], strict: bool) -> None:
    """Print the NOT RELIABLE line when there are reasons, and exit with code 3 under ``--strict``."""
    if reasons:
        print_reliability(what, reasons)
        if strict:
            raise typer.Exit(EXIT_UNRELIABLE)


def _check_netcdf_path(out: Path | None) -> None:
    if out is not None and out.suffix not in (".nc", ".nc4", ".h5"):
        raise ValueError(f"--out must be a netCDF file ending in .nc, got {str(out)!r}")


@app.command()
def thermo(
    model: ModelArg,
    betas: Annotated[str | None, _opt("--betas", "comma-separated increasing β grid, e.g. 0,0.1,0.2.")] = None,
    beta_min: Annotated[float | None, _opt("--beta-min", "grid start [0].")] = None,
    beta_max: Annotated[float | None, _opt("--beta-max", "grid end (linear grid of --n-betas points).")] = None,
    n_betas: NBetasOpt = None,
    method: Annotated[str, _opt("--method", "ti or pt.", show_default=True)] = "ti",
    out: Annotated[Path | None, _opt("--out", "write the xarray Dataset to this netCDF (.nc) file.")] = None,
    seed: SeedOpt = 0,
    chains: ChainsOpt = None,
    steps: StepsOpt = None,
    kernel: KernelOpt = "auto",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    strict: StrictOpt = False,
    L: LOpt = None, M: MOpt = None, J: JOpt = None, h: HOpt = None,  # noqa: E741
    n: NOpt = None, p: POpt = None, alpha: AlphaOpt = None, kappa: KappaOpt = None, data: DataOpt = None,
    couplings: CouplingsOpt = None, weights: WeightsOpt = None, n_visible: NVisOpt = None,
    n_hidden: NHidOpt = None, units: UnitsOpt = None, patterns: PatternsOpt = None, sigma_w: SigmaOpt = None,
    classes: ClassesOpt = None, widths: WidthsOpt = None, activation: ActivationOpt = None, loss: LossOpt = None,
    disorder_seed: DisorderOpt = 0,
) -> None:
    """Thermodynamics U, F, S, C, log Z (± stderr) of a built-in MODEL on a β grid.

    Shows per β whether the results are reliable (engine.reliability); --strict exits with code 3 when one is not.
    """
    grid = parse_betas(betas, beta_min, beta_max, n_betas)
    method = check_choice("method", method, THERMO_METHODS)
    _check_netcdf_path(out)
    built = build_model(model, disorder_seed, L=L, M=M, J=J, h=h, n=n, p=p, alpha=alpha, kappa=kappa, data=data,
                        couplings=couplings, weights=weights, n_visible=n_visible, n_hidden=n_hidden, units=units,
                        patterns=patterns, sigma_w=sigma_w, classes=classes, widths=widths, activation=activation,
                        loss=loss)
    budget = run_options(chains=chains, steps=steps, n_betas=None)
    with Progress(not quiet and not json_out) as bar, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not reliable", category=RuntimeWarning)
        ds = run_thermodynamics(built.model, grid, method=method, seed=seed, kernel=kernel,
                                progress=bar.steps(f"{method.upper()} sampling"), **budget)
    exact = [exact_log_partition(built.model, float(b)) for b in ds["beta"].values]
    if all(e is not None for e in exact):
        ds = ds.assign(log_Z_exact=("beta", [float(e) for e in exact]))
    ds.attrs.update(model=model, model_options=str(built.options), method=method, seed=seed,
                    disorder_seed=disorder_seed)
    if out is not None:
        write_netcdf(ds, out)
    reliable = np.asarray(ds["reliable"].values, bool)
    reasons = [r for r in str(ds.attrs.get("reasons", "")).split("; ") if r]
    what = f"thermodynamics [{method}] at {int((~reliable).sum())} of {reliable.size} β"
    if json_out:
        print_json({"model": model, "model_options": built.options, "method": method,
                     "data": {k: ds[k].values for k in ds.variables}, "attrs": dict(ds.attrs),
                     "reliable": bool(reliable.all()), "reasons": reasons, "out": str(out) if out else None})
        _finish_reliability(what, reasons if not reliable.all() else [], strict)
        return
    _print_thermo_table(ds, built, method)
    if out is not None:
        console().print(f"wrote {out}")
    _finish_reliability(what, reasons if not reliable.all() else [], strict)


def _print_thermo_table(ds, built, method) -> None:
    from rich.table import Table

    table = Table(title=f"thermodynamics of {built.label} [{method}]")
    cols = [c for c in ("U", "F", "S", "C", "log_Z") if c in ds]
    has_exact = "log_Z_exact" in ds
    for col in ["β", *cols] + (["log Z exact", "z"] if has_exact else []) + ["reliable"]:
        table.add_column(col, justify="right")
    for i, b in enumerate(ds["beta"].values):
        cells = [f"{b:.4g}"]
        for c in cols:
            err = ds[f"{c}_stderr"].values[i] if f"{c}_stderr" in ds else math.nan
            cells.append(f"{ds[c].values[i]:.6g} ± {err:.2g}")
        if has_exact:
            exact_i, se = float(ds["log_Z_exact"].values[i]), float(ds["log_Z_stderr"].values[i])
            z = (float(ds["log_Z"].values[i]) - exact_i) / se if se > 0 else math.nan
            cells += [f"{exact_i:.6g}", f"{z:+.2f}"]
        cells.append("yes" if bool(ds["reliable"].values[i]) else "NO")
        table.add_row(*cells)
    console().print(table)


@app.command()
def reproduce(
    name: Annotated[str | None, typer.Argument(help="experiment name (see --list).", show_default=False)] = None,
    list_: Annotated[bool, _opt("--list", "list the registered experiments.")] = False,
    all_: Annotated[bool, _opt("--all", "run every experiment and write index.md.")] = False,
    full: Annotated[bool, _opt("--full", "paper-size run (slow) instead of the quick one.")] = False,
    out: Annotated[Path, _opt("--out", "output folder (one sub-folder per experiment).", show_default=True)] = Path(
        "results"),
    seed: Annotated[int, _opt("--seed", "the experiment's seed (derives every PRNG key it uses).",
                              show_default=True)] = 0,
    size: Annotated[str | None, _opt("--size", "size preset, e.g. 'tiny' for smoke tests (overrides --full).")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Reproduce a registered experiment: table (Markdown + CSV) of measured vs theory, netCDF data, PNG figure.

    Exit code 1 when a check fails its tolerance.
    """
    if list_:
        if name is not None or all_:
            raise ValueError("--list takes no experiment name and no --all")
        from rich.table import Table

        table = Table(title="registered experiments")
        table.add_column("name")
        table.add_column("description")
        for key, desc in registry.list_experiments():
            table.add_row(key, desc)
        console().print(table)
        return
    if all_ == (name is not None):
        raise ValueError("reproduce needs an experiment NAME or --all (see --list)")
    names = list(registry.EXPERIMENTS) if all_ else [name]
    if not all_:
        registry.load_experiment(name)  # unknown name -> ValueError before anything runs
    results, n_fail = [], 0
    con = console()
    for key in names:
        with Progress(not quiet) as bar:
            try:
                res = registry.run_experiment(key, out, full=full, seed=seed, size=size,
                                              progress=bar.fractions())
            except Exception:  # noqa: BLE001 — with --all one broken experiment must not stop the others
                if not all_:
                    raise
                res = {"name": key, "description": dict(registry.list_experiments()).get(key, ""),
                       "error": str(sys.exc_info()[1])}
        results.append(res)
        if "error" in res:
            n_fail += 1
            print(f"error: {key}: {res['error']}", file=sys.stderr)
            continue
        n_fail += res.get("n_fail", 0)
        print_rows(con, key, res)
    if all_:
        index = registry.write_index(results, out)
        con.print(f"wrote {index}")
    if n_fail:
        print(f"error: {n_fail} check(s) failed", file=sys.stderr)
        raise typer.Exit(1)


SWEEP_HELP = (
    "Run a declarative parameter sweep from a TOML CONFIG into one netCDF dataset (a dimension per axis).\n\n"
    "Sections: [model] (name and model parameters, named as the flags of logz: n_visible for --n-visible), [data] "
    "(more model parameters), [sampler] (kernel, step_size, ...), [estimator] (method = ensemble | ais | pt | ti | "
    "exact | thermodynamics, n_chains, n_steps, seed (the Monte Carlo seed), ...), [sweep] (beta and "
    "disorder_seed, the seed of couplings / patterns / data; the Monte Carlo seed never changes them) and [output] "
    "(path, unit_size). Any value may be a grid axis: a list, {linspace = [a, b, n]}, {logspace = [a, b, n]}, "
    "{geomspace = [a, b, n]} or {range = [start, stop]}. Each value of a size compiles one program; β, seeds, J, h, "
    "κ and σ_w are batched into it. Example:\n\n"
    "    [model]\n    name = \"sk\"\n    n = [8, 12]\n"
    "    [sweep]\n    beta = {linspace = [0.2, 2.0, 10]}\n    disorder_seed = [0, 1, 2, 3]\n"
    "    [estimator]\n    n_chains = 64\n    n_steps = 2000\n"
    "    [output]\n    path = \"sk.nc\"\n\n"
    "More in experiments/configs/*.toml. Completed units are saved as they finish: an interrupted sweep resumes."
)


@app.command(help=SWEEP_HELP.replace("[", "\\["))
def sweep(
    config: Annotated[Path, typer.Argument(help="sweep config (.toml).", show_default=False)],
    out: Annotated[Path | None, _opt("--out", "output netCDF file [the config's [output] path].")] = None,
    no_resume: Annotated[bool, _opt("--no-resume", "recompute every unit instead of resuming.")] = False,
    dry_run: Annotated[bool, _opt("--dry-run", "print the grid, compile groups and memory per unit; run nothing.")
                       ] = False,
    force: Annotated[bool, _opt("--force", "overwrite results of a different config at the output path.")] = False,
    quiet: QuietOpt = False,
) -> None:
    from ..sweep import run_sweep

    _check_netcdf_path(out)
    ds = run_sweep(config, out=out, resume=not no_resume, dry_run=dry_run,
                   progress=not quiet and sys.stderr.isatty(), force=force)
    if not dry_run:
        dims = " × ".join(f"{k} {v}" for k, v in ds.sizes.items()) or "a single point"
        names = ", ".join(map(str, ds.data_vars))
        console().print(f"wrote {ds.encoding.get('source', out)}: {dims}; variables: {names}", markup=False)


def _one_line(err: BaseException) -> str:
    msg = err.format_message() if hasattr(err, "format_message") else str(err)
    if isinstance(err, FileNotFoundError) and getattr(err, "filename", None):
        msg = f"file not found: {err.filename}"
    elif isinstance(err, KeyError):
        msg = f"missing key {err.args[0]!r}" if err.args else "missing key"
    return " ".join(str(msg).split()) or type(err).__name__


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``thermodl`` script. Exits 0 on success, 1 on failed checks, 2 on bad input."""
    args = sys.argv[1:] if argv is None else list(argv)
    command = typer.main.get_command(app)
    if not args:
        args = ["--help"]
    try:
        code = command.main(args=args, prog_name="thermodl", standalone_mode=False)
    except (ValueError, KeyError, OSError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:
        if hasattr(err, "format_message") and hasattr(err, "exit_code"):  # click/typer usage errors
            print(f"error: {_one_line(err)}", file=sys.stderr)
            sys.exit(2)
        if type(err).__name__ == "Abort":
            print("error: aborted", file=sys.stderr)
            sys.exit(1)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
