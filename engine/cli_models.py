"""Options and estimator runs of the ``thermodl logz`` / ``thermodl thermo`` commands.

The model options are the parameter table of ``engine.factories`` (the one model factory of the package) as CLI
flags: ``--n-visible`` is the parameter ``n_visible``, ``--disorder-seed`` the parameter ``seed``, and each
flag's help is assembled from the table's docs. The run helpers map the CLI's budget options (``--chains``,
``--steps``, ``--n-betas``) onto the keywords of the estimator a method resolves to.

Progress callbacks passed to the run helpers follow the estimators' convention ``progress(done, total)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from . import factories, samplers
from .validate import check_beta, check_betas, check_positive_int

__all__ = ["MODEL_HELP", "model_options", "exact_log_partition", "resolve_method", "run_log_partition",
           "run_thermodynamics", "run_options", "parse_betas"]


def _opt(flag: str, help: str, *, show_default: bool = False, short: str | None = None):
    """A typer option whose help text may contain shapes like [P, N] (escaped from rich markup)."""
    decls = (flag, short) if short else (flag,)
    return typer.Option(*decls, help=help.replace("[", "\\["), show_default=show_default)


def _flag_help(key: str) -> str:
    """Help of the flag of parameter ``key``: 'model, model: doc; model: doc.' from ``factories.MODELS``."""
    docs: dict[str, list[str]] = {}
    for name, table in factories.MODELS.items():
        if key in table:
            docs.setdefault(table[key].doc, []).append(name)
    return "; ".join(f"{', '.join(names)}: {doc}" for doc, names in docs.items()) + "."


MODEL_HELP = "Built-in model: " + ", ".join(
    f"{name} ({', '.join(factories.option_flag(k) for k in table if k != 'seed')})"
    for name, table in factories.MODELS.items()) + "."
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
DisorderOpt = Annotated[int | None, _opt("--disorder-seed", "seed of random couplings, patterns, data [--seed].")]
SeedOpt = Annotated[int, _opt("--seed", "PRNG seed of the Monte Carlo run.", show_default=True)]
ChainsOpt = Annotated[int | None, _opt("--chains", "independent chains [method default].")]
StepsOpt = Annotated[int | None, _opt("--steps", "AIS: annealing temperatures; TI, PT: sweeps per temperature.")]
NBetasOpt = Annotated[int | None, _opt("--n-betas", "logz: TI grid points or PT replicas; thermo: grid size [21].")]
KernelOpt = Annotated[str, _opt("--kernel", f"Monte Carlo kernel: {', '.join(samplers.KERNELS)}.",
                                show_default=True)]
JsonOpt = Annotated[bool, _opt("--json", "machine-readable JSON on stdout (with diagnostics).")]
QuietOpt = Annotated[bool, _opt("--quiet", "no progress bar.", short="-q")]


def model_options(**flags) -> dict[str, Any]:
    """The model parameters given on the command line (flags left at None dropped)."""
    return {k: v for k, v in flags.items() if v is not None}


def exact_log_partition(model: Any, beta: float) -> float | None:
    """The exact log Z(β) in float64 (``engine.api.exact_log_partition``) when one exists, else ``None``."""
    from .api import exact_log_partition as exact

    try:
        return exact(model, beta).value
    except ValueError:  # no closed form and too large to enumerate (or e.g. Ising with h ≠ 0 on a wide lattice)
        return None


# Which CLI run options each method understands, and the estimator keyword they map to.
_METHOD_OPTIONS = {
    "ais": {"n_chains": "n_chains", "n_steps": "n_temperatures"},
    "pt": {"n_chains": "n_chains", "n_steps": "n_steps", "n_betas": "n_replicas"},
    "ti": {"n_chains": "n_chains", "n_steps": "n_steps", "n_betas": "n_betas"},
    "exact": {},
}
_RUN_FLAGS = {"n_chains": "--chains", "n_steps": "--steps", "n_betas": "--n-betas"}


def resolve_method(model: Any, method: str) -> str:
    """``"auto"`` → ``"exact"`` when the model has an exact log Z (or is discrete with dim ≤ 24), else ``"ais"``
    (the rule of ``engine.api.log_partition``)."""
    from thermodl.models.base import has_exact
    from thermodl.models.exact import MAX_ENUMERATION_DIM

    if method != "auto":
        return method
    try:
        closed_form = has_exact(model)
    except ValueError:
        closed_form = False
    enumerable = getattr(model, "kind", None) == "discrete" and model.dim <= MAX_ENUMERATION_DIM
    return "exact" if closed_form or enumerable else "ais"


def run_log_partition(model: Any, beta: float, *, method: str, seed: int, kernel: str = "auto",
                      progress: Callable[[int, int], None] | None = None, **budget) -> Any:
    """``engine.api.log_partition`` with the CLI's budget options mapped onto the chosen estimator's keywords.

    Args:
        model: a built model; beta: β ≥ 0; method: auto, ais, ti, pt or exact; seed: PRNG seed of the run.
        progress: ``progress(done, total)``, used by the PT and TI runs.
        **budget: ``n_chains``, ``n_steps``, ``n_betas`` (see ``run_options``).
    Returns:
        ``LogZEstimate``.
    """
    import jax

    from .api import log_partition

    method = resolve_method(model, method)
    mapping = _METHOD_OPTIONS[method]
    for name in budget:
        if name not in mapping:
            raise ValueError(f"{_RUN_FLAGS[name]} does not apply to method {method!r}"
                             + (" (auto picked exact; choose --method ais, ti or pt)" if method == "exact" else ""))
    if method == "exact":
        return log_partition(model, beta, method="exact")
    options = {mapping[k]: v for k, v in budget.items()}
    if progress is not None and method in ("pt", "ti"):
        options["progress"] = progress
    return log_partition(model, beta, method=method, key=jax.random.key(seed), kernel=kernel, **options)


def run_thermodynamics(model: Any, betas, *, method: str, seed: int, kernel: str = "auto",
                       progress: Callable[[int, int], None] | None = None, **budget):
    """``engine.api.thermodynamics`` on the β grid (``progress(done, total)``); returns its ``xarray.Dataset``."""
    import jax

    from .api import thermodynamics

    options = {"kernel": kernel, **budget}
    if progress is not None:
        options["progress"] = progress
    return thermodynamics(model, betas, key=jax.random.key(seed), method=method, **options)


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
