"""Options of the ``thermodl logz`` / ``thermodl thermo`` commands, and the parsing of their values.

The model options are the parameter table of ``engine.catalog`` (the one model factory of the package) as CLI
flags: ``--n-visible`` is the parameter ``n_visible``, ``--disorder-seed`` the parameter ``disorder_seed``, and
each flag's help is assembled from the table's docs.

Two seeds, never mixed: ``--seed`` is the Monte Carlo seed (chains, annealing, swaps) and never changes the
model; ``--disorder-seed`` (default 0) draws the couplings, patterns and data of the built-in models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .. import catalog, kernel_binding
from ..validate import check_beta, check_betas, check_positive_int

__all__ = ["MODEL_HELP", "METHOD_OPTIONS", "RUN_FLAGS", "model_options", "run_options", "parse_betas", "StrictOpt",
           "TolOpt", "MaxTimeOpt", "EXIT_UNRELIABLE"]


def _opt(flag: str, help: str, *, show_default: bool = False, short: str | None = None):
    """A typer option whose help text may contain shapes like [P, N] (escaped from rich markup)."""
    decls = (flag, short) if short else (flag,)
    return typer.Option(*decls, help=help.replace("[", "\\["), show_default=show_default)


def _flag_help(key: str) -> str:
    """Help of the flag of parameter ``key``: 'model, model: doc; model: doc.' from ``catalog.MODELS``."""
    docs: dict[str, list[str]] = {}
    for name, table in catalog.MODELS.items():
        if key in table:
            docs.setdefault(table[key].doc, []).append(name)
    return "; ".join(f"{', '.join(names)}: {doc}" for doc, names in docs.items()) + "."


MODEL_HELP = "Built-in model: " + ", ".join(
    f"{name} ({', '.join(catalog.option_flag(k) for k in table if k != catalog.DISORDER_SEED)})"
    for name, table in catalog.MODELS.items()) + "."
ModelArg = Annotated[str, typer.Argument(help=MODEL_HELP, show_default=False)]
LOpt = Annotated[int | None, _opt("--L", _flag_help("L"))]
MOpt = Annotated[int | None, _opt("--M", _flag_help("M"))]
JOpt = Annotated[float | None, _opt("--J", _flag_help("J"))]
HOpt = Annotated[float | None, _opt("--h", _flag_help("h"))]
NOpt = Annotated[int | None, _opt("--n", _flag_help("n"))]
POpt = Annotated[int | None, _opt("--p", _flag_help("p"))]
AlphaOpt = Annotated[float | None, _opt("--alpha", _flag_help("alpha"))]
KappaOpt = Annotated[float | None, _opt("--kappa", _flag_help("kappa"))]
DataOpt = Annotated[Path | None, _opt("--data", _flag_help("data"))]
CouplingsOpt = Annotated[Path | None, _opt("--couplings", _flag_help("couplings"))]
WeightsOpt = Annotated[Path | None, _opt("--weights", _flag_help("weights"))]
NVisOpt = Annotated[int | None, _opt("--n-visible", _flag_help("n_visible"))]
NHidOpt = Annotated[int | None, _opt("--n-hidden", _flag_help("n_hidden"))]
UnitsOpt = Annotated[str | None, _opt("--units", _flag_help("units"))]
PatternsOpt = Annotated[str | None, _opt("--patterns", _flag_help("patterns"))]
SigmaOpt = Annotated[float | None, _opt("--sigma-w", _flag_help("sigma_w"))]
ClassesOpt = Annotated[str | None, _opt("--classes", _flag_help("classes"))]
WidthsOpt = Annotated[str | None, _opt("--widths", _flag_help("widths"))]
ActivationOpt = Annotated[str | None, _opt("--activation", _flag_help("activation"))]
LossOpt = Annotated[str | None, _opt("--loss", _flag_help("loss"))]
DisorderOpt = Annotated[int, _opt("--disorder-seed", "seed of the model's random couplings, patterns and data "
                                  "(independent of --seed).", show_default=True)]
SeedOpt = Annotated[int, _opt("--seed", "PRNG seed of the Monte Carlo run; never changes the model (that is "
                              "--disorder-seed).", show_default=True)]
ChainsOpt = Annotated[int | None, _opt("--chains", "independent chains [method default].")]
StepsOpt = Annotated[int | None, _opt("--steps", "AIS: annealing temperatures; TI, PT: sweeps per temperature.")]
NBetasOpt = Annotated[int | None, _opt("--n-betas", "logz: TI grid points or PT replicas; thermo: grid size [21].")]
KernelOpt = Annotated[str, _opt("--kernel", f"Monte Carlo kernel: {', '.join(kernel_binding.KERNELS)}.",
                                show_default=True)]
JsonOpt = Annotated[bool, _opt("--json", "machine-readable JSON on stdout (with diagnostics).")]
QuietOpt = Annotated[bool, _opt("--quiet", "no progress bar.", short="-q")]
StrictOpt = Annotated[bool, _opt("--strict", "exit with code 3 when a result is not reliable (see the reliability "
                                 "line; engine.reliability lists the rules).")]
TolOpt = Annotated[float | None, _opt("--tol", "target standard error of log Z: the estimator refines until its "
                                      "error bar is below it (engine.api.log_partition tol=).")]
MaxTimeOpt = Annotated[float | None, _opt("--max-time", "wall-clock budget in seconds for refining towards --tol "
                                          "(engine.api.log_partition max_time=); the result is not reliable when "
                                          "it is hit.")]


def model_options(**flags) -> dict[str, Any]:
    """The model parameters given on the command line (flags left at None dropped)."""
    return {k: v for k, v in flags.items() if v is not None}


EXIT_UNRELIABLE = 3
"""Exit code of ``logz`` / ``thermo`` with ``--strict`` when a result is not reliable."""

# Which CLI run options each method understands, and the estimator keyword they map to.
METHOD_OPTIONS = {
    "ais": {"n_chains": "n_chains", "n_steps": "n_temperatures"},
    "smc": {"n_chains": "n_particles", "n_steps": "n_sweeps"},
    "pt": {"n_chains": "n_chains", "n_steps": "n_steps", "n_betas": "n_replicas"},
    "ti": {"n_chains": "n_chains", "n_steps": "n_steps", "n_betas": "n_betas"},
    "exact": {},
}
RUN_FLAGS = {"n_chains": "--chains", "n_steps": "--steps", "n_betas": "--n-betas"}


def run_options(*, chains: int | None, steps: int | None, n_betas: int | None) -> dict[str, int]:
    """The budget options given (``--chains``, ``--steps``, ``--n-betas``), checked positive."""
    out = {}
    for name, value, flag in (("n_chains", chains, "--chains"), ("n_steps", steps, "--steps"),
                              ("n_betas", n_betas, "--n-betas")):
        if value is not None:
            out[name] = check_positive_int(value, flag)
    return out


def parse_betas(betas: str | None, beta_min: float | None, beta_max: float | None, n_betas: int | None):
    """The β grid of ``thermo``: ``--betas b1,b2,...`` (increasing) or a linear grid from --beta-min/max."""
    import numpy as np

    if betas is not None:
        if any(v is not None for v in (beta_min, beta_max, n_betas)):
            raise ValueError("give either --betas or --beta-min/--beta-max/--n-betas, not both")
        try:
            values = [float(b) for b in betas.split(",") if b.strip()]
        except ValueError:
            raise ValueError(f"--betas must be comma-separated numbers, got {betas!r}") from None
        return check_betas(values, "--betas", increasing=True)
    lo = 0.0 if beta_min is None else check_beta(beta_min, "--beta-min")
    if beta_max is None:
        raise ValueError("thermo needs --betas or --beta-max (with --beta-min and --n-betas)")
    hi = check_beta(beta_max, "--beta-max", allow_zero=False)
    if hi <= lo:
        raise ValueError(f"--beta-max must exceed --beta-min, got {hi!r} <= {lo!r}")
    k = check_positive_int(21 if n_betas is None else n_betas, "--n-betas")
    if k < 2:
        raise ValueError(f"--n-betas must be at least 2, got {k}")
    return np.linspace(lo, hi, k)
