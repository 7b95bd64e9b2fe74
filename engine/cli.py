"""The ``thermodl`` command line: log Z and thermodynamics of built-in models, and experiment reproduction.

    thermodl logz ising2d --L 16 --beta 0.44 --method ais
    thermodl thermo sk --n 12 --beta-min 0 --beta-max 2 --n-betas 21 --out sk.nc
    thermodl reproduce exact-checks            # README's main job: every exact check, table + figure
    thermodl reproduce --list | --all

Errors (bad values, unknown names, missing files, bad options) print ONE line ``error: ...`` on stderr and exit
with code 2, without a traceback; ``reproduce`` exits 1 when a check fails. Outputs are written atomically.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer

from . import registry
from .validate import check_beta, check_betas, check_choice, check_positive_int

__all__ = ["app", "main"]

METHODS = ("auto", "ais", "ti", "pt", "exact")
THERMO_METHODS = ("ti", "pt")

app = typer.Typer(
    name="thermodl",
    help="thermodl: Gibbs ensembles, Monte Carlo kernels and partition functions with honest error bars.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _opt(flag: str, help: str, *, show_default: bool = False, short: str | None = None):
    """A typer option whose help text may contain shapes like [P, N] (escaped from rich markup)."""
    decls = (flag, short) if short else (flag,)
    return typer.Option(*decls, help=help.replace("[", "\\["), show_default=show_default)


# Model options, shared by `logz` and `thermo` (see build_model for their meaning per model); defaults in [].
MODEL_HELP = (
    "Built-in model: ising2d (--L, --M, --J, --h), sk (--n, --couplings), rbm (--weights or --n-visible/"
    "--n-hidden, --units), hopfield (--n, --patterns), perceptron (--n with --p or --alpha, or --data), linear "
    "(--data, or --n/--p synthetic; --sigma-w)."
)
ModelArg = Annotated[str, typer.Argument(help=MODEL_HELP, show_default=False)]
LOpt = Annotated[int | None, _opt("--L", "ising2d: rows of the L×M torus [8].")]
MOpt = Annotated[int | None, _opt("--M", "ising2d: columns [L].")]
JOpt = Annotated[float | None, _opt("--J", "ising2d: coupling J [1.0].")]
HOpt = Annotated[float | None, _opt("--h", "ising2d: external field h [0.0].")]
NOpt = Annotated[int | None, _opt("--n", "sk, hopfield: spins [12]; perceptron: inputs [15]; linear: features [4].")]
POpt = Annotated[int | None, _opt("--p", "perceptron: patterns P [round(αN)]; linear: examples [16].")]
AlphaOpt = Annotated[float | None, _opt("--alpha", "perceptron: load α = P/N [0.5].")]
DataOpt = Annotated[Path | None, _opt("--data", "perceptron, linear: .npz file with X [P, N] and y [P].")]
CouplingsOpt = Annotated[Path | None, _opt("--couplings", "sk: .npz file with a symmetric J [N, N].")]
WeightsOpt = Annotated[Path | None, _opt("--weights", "rbm: .npz file with W [nv, nh], a [nv], b [nh].")]
NVisOpt = Annotated[int | None, _opt("--n-visible", "rbm: visible units of a random RBM [8].")]
NHidOpt = Annotated[int | None, _opt("--n-hidden", "rbm: hidden units of a random RBM [4].")]
UnitsOpt = Annotated[str | None, _opt("--units", "rbm: 'binary' (0/1) or 'spin' (±1) units [binary].")]
PatternsOpt = Annotated[str | None, _opt("--patterns", "hopfield: P random patterns [2], or an .npz with xi [P, N].")]
SigmaOpt = Annotated[float | None, _opt("--sigma-w", "linear: prior standard deviation of the weights [1.0].")]
DisorderOpt = Annotated[int | None, _opt("--disorder-seed", "seed of random couplings, patterns, data [--seed].")]
SeedOpt = Annotated[int, _opt("--seed", "PRNG seed of the Monte Carlo run.", show_default=True)]
ChainsOpt = Annotated[int | None, _opt("--chains", "independent chains [method default].")]
StepsOpt = Annotated[int | None, _opt("--steps", "AIS: annealing temperatures; TI, PT: sweeps per temperature.")]
NBetasOpt = Annotated[int | None, _opt("--n-betas", "logz: TI grid points or PT replicas; thermo: grid size [21].")]
KernelOpt = Annotated[str, _opt("--kernel", "Monte Carlo kernel: auto, heat_bath, block_gibbs, hmc, ...",
                                show_default=True)]
JsonOpt = Annotated[bool, _opt("--json", "machine-readable JSON on stdout (with diagnostics).")]
QuietOpt = Annotated[bool, _opt("--quiet", "no progress bar.", short="-q")]


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # A non-terminal stream (pipe, file, test capture) gets a wide console so tables are not wrapped.
    return Console(file=stream, width=None if stream.isatty() else 160, soft_wrap=not stream.isatty())


class _Progress:
    """A rich progress bar driven by ``progress(description, fraction)`` calls; inert when disabled."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self._bar = None
        self._task = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                                 console=_console(stderr=True), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task("compiling and sampling", total=1.0)
        return self

    def __call__(self, description: str, fraction: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=str(description), completed=min(max(float(fraction), 0), 1))

    def callback(self):
        return self if self.enabled else None

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False


def _model_options(**kw) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def _fmt(x: float | None, digits: int = 8) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}g}"


def _print_json(obj: Any) -> None:
    import json

    sys.stdout.write(json.dumps(registry.jsonable(obj), indent=2) + "\n")


# ----------------------------------------------------------------------------------------------------------
# Built-in models
# ----------------------------------------------------------------------------------------------------------

MODELS = ("ising2d", "sk", "rbm", "hopfield", "perceptron", "linear")
_MODEL_OPTIONS = {
    "ising2d": ("L", "M", "J", "h"),
    "sk": ("n", "couplings"),
    "rbm": ("weights", "n_visible", "n_hidden", "units"),
    "hopfield": ("n", "patterns"),
    "perceptron": ("n", "p", "alpha", "data"),
    "linear": ("data", "n", "p", "sigma_w"),
}


def _flag(option: str) -> str:
    return "--" + (option if option in ("L", "M", "J", "h") else option.replace("_", "-"))


class BuiltModel(NamedTuple):
    """A model built from CLI options: the model, a label, the options used, dim and log Z(0)."""

    model: Any
    label: str
    options: dict
    dim: int
    log_z0: float


def _load_npz(path: Path, keys: tuple[str, ...], flag: str) -> dict[str, Any]:
    """Named arrays from an .npz file, each checked finite; every failure is a one-line ValueError."""
    import zipfile

    import numpy as np

    from .validate import check_finite_array

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{flag}: file not found: {path}")
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as err:  # not an npz / corrupt zip / pickle
        raise ValueError(f"{flag}: cannot read {path} as .npz ({' '.join(str(err).split())})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{flag}: {path} is a single .npy array, not an .npz archive of named arrays")
    try:
        with f:
            found = set(f.files)
            missing = [k for k in keys if k not in found]
            if missing:
                raise ValueError(f"{flag}: {path} has no array {missing[0]!r} (it has: {', '.join(sorted(found))})")
            arrays = {k: np.asarray(f[k]) for k in keys}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        if str(err).startswith(flag):  # our own message (missing key)
            raise
        raise ValueError(f"{flag}: cannot read {path} as .npz ({' '.join(str(err).split())})") from None
    for k, v in arrays.items():
        check_finite_array(v, f"{path.name}:{k}")
    return arrays


def _labels(y):
    import numpy as np

    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    return y


def build_model(name: str, options: dict[str, Any], *, seed: int = 0) -> BuiltModel:
    """Build a built-in model from CLI options (random couplings/patterns/data drawn from ``seed``).

    Models: ``ising2d`` (L×M torus, J, h), ``sk`` (N spins, Gaussian J ~ N(0, 1/N) or from --couplings),
    ``rbm`` (weights from --weights, or random W, a, b ~ N(0, 1/n_visible)), ``hopfield`` (N spins, P
    random ±1 patterns or from a file), ``perceptron`` (binary ±1 perceptron on Gardner data: random ±1 patterns
    and labels, P = --p or round(α N)), ``linear`` (Bayesian linear regression, Gaussian prior σ_w, data from
    --data or synthetic: X ~ N(0, 1), y = X w* + 0.1 noise).

    Raises:
        ValueError: unknown model, an option that does not apply to it, bad sizes, unreadable/NaN data.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    name = check_choice("model", name, MODELS)
    stray = [k for k in options if k not in _MODEL_OPTIONS[name]]
    if stray:
        valid = ", ".join(_flag(k) for k in _MODEL_OPTIONS[name])
        raise ValueError(f"option {_flag(stray[0])} does not apply to model {name!r} (its options: {valid})")
    key = jax.random.key(seed)
    o = dict(options)

    def size(opt: str, default: int) -> int:
        return check_positive_int(o.get(opt, default), _flag(opt))

    if name == "ising2d":
        from thermodl.models.ising import Ising2D

        L = size("L", 8)
        M = size("M", L)
        J = float(o.get("J", 1.0))
        h = float(o.get("h", 0.0))
        for flag, v in (("--J", J), ("--h", h)):
            if not math.isfinite(v):
                raise ValueError(f"{flag} must be finite, got {v!r}")
        model = Ising2D(L, M, J=J, h=h)
        label, used = f"Ising2D {L}×{M} (J={J:g}, h={h:g})", {"L": L, "M": M, "J": J, "h": h}
    elif name == "sk":
        from thermodl.models.sk import SK

        if "couplings" in o:
            if "n" in o:
                raise ValueError("give either --n or --couplings for sk, not both")
            J = _load_npz(o["couplings"], ("J",), "--couplings")["J"]
            if J.ndim != 2 or J.shape[0] != J.shape[1]:
                raise ValueError(f"--couplings: J must be square [N, N], got shape {J.shape}")
            model = SK(jnp.asarray(J, jnp.float32))
            used = {"couplings": str(o["couplings"])}
        else:
            N = size("n", 12)
            model = SK.random(key, N)
            used = {"n": N, "disorder_seed": seed}
        label = f"SK N={model.dim}"
    elif name == "rbm":
        from thermodl.models.rbm import RBM

        units = check_choice("units", o.get("units", "binary"), ("binary", "spin"))
        if "weights" in o:
            if "n_visible" in o or "n_hidden" in o:
                raise ValueError("give either --weights or --n-visible/--n-hidden for rbm, not both")
            arr = _load_npz(o["weights"], ("W", "a", "b"), "--weights")
            W, a, b = arr["W"], arr["a"], arr["b"]
            if W.ndim != 2:
                raise ValueError(f"--weights: W must be 2-d [n_visible, n_hidden], got shape {W.shape}")
            from .validate import check_shapes

            check_shapes({"W": W, "a": a, "b": b}, {"W": ("n_visible", "n_hidden"), "a": ("n_visible",),
                                                     "b": ("n_hidden",)})
            used = {"weights": str(o["weights"]), "units": units}
        else:
            nv, nh = size("n_visible", 8), size("n_hidden", 4)
            W = None
            used = {"n_visible": nv, "n_hidden": nh, "units": units, "disorder_seed": seed}
        if W is None:
            model = RBM.random(key, nv, nh, scale=1.0 / math.sqrt(nv), units=units)
        else:
            model = RBM(jnp.asarray(W, jnp.float32), jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32),
                        units=units)
        label = f"RBM {model.W.shape[0]}×{model.W.shape[1]} ({units})"
    elif name == "hopfield":
        from thermodl.models.hopfield import Hopfield

        pat = o.get("patterns", "2")
        if str(pat).strip().lstrip("+").isdigit():
            P, N = check_positive_int(int(pat), "--patterns"), size("n", 12)
            model = Hopfield.random(key, P, N)
            used = {"n": N, "patterns": P, "disorder_seed": seed}
        else:
            if "n" in o:
                raise ValueError("--n does not apply when --patterns is a file (N comes from the file)")
            xi = _load_npz(Path(pat), ("xi",), "--patterns")["xi"]
            if xi.ndim != 2:
                raise ValueError(f"--patterns: xi must be 2-d [P, N], got shape {xi.shape}")
            model = Hopfield(jnp.asarray(xi, jnp.float32))
            used = {"patterns": str(pat)}
        label = f"Hopfield N={model.dim}"
    elif name == "perceptron":
        from thermodl.models.perceptron import BinaryPerceptron

        if "data" in o:
            if any(k in o for k in ("n", "p", "alpha")):
                raise ValueError("--data gives the perceptron's patterns; do not combine it with --n/--p/--alpha")
            X, y = _xy(o["data"])
            used = {"data": str(o["data"])}
        else:
            from thermodl.models.data import gardner_patterns

            N = size("n", 15)
            if "p" in o and "alpha" in o:
                raise ValueError("give either --p or --alpha, not both")
            if "p" in o:
                P = size("p", 1)
            else:
                alpha = o.get("alpha", 0.5)
                if not (math.isfinite(alpha) and alpha > 0):
                    raise ValueError(f"--alpha must be finite and > 0, got {alpha!r}")
                P = max(1, round(alpha * N))
            X, y = gardner_patterns(key, P, N)[:2]
            used = {"n": N, "p": P, "disorder_seed": seed}
        model = BinaryPerceptron(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32))
        label = f"binary perceptron N={model.dim}, P={np.shape(X)[0]}"
    else:  # linear
        from thermodl.models.linear import BayesianLinear

        sigma = float(o.get("sigma_w", 1.0))
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"--sigma-w must be finite and > 0, got {sigma!r}")
        if "data" in o:
            if any(k in o for k in ("n", "p")):
                raise ValueError("--data gives the regression data; do not combine it with --n/--p")
            X, y = _xy(o["data"])
            used = {"data": str(o["data"]), "sigma_w": sigma}
        else:
            N, P = size("n", 4), size("p", 16)
            kx, kw, ke = jax.random.split(key, 3)
            X = jax.random.normal(kx, (P, N))
            y = X @ jax.random.normal(kw, (N,)) + 0.1 * jax.random.normal(ke, (P,))
            used = {"n": N, "p": P, "sigma_w": sigma, "disorder_seed": seed}
        model = BayesianLinear(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32), sigma_w=sigma)
        label = f"Bayesian linear regression d={np.shape(X)[1]}, P={np.shape(X)[0]}"
    return BuiltModel(model, label, used, int(model.dim), float(model.log_reference_partition()))


def _xy(path: Path):
    from .validate import check_shapes

    arr = _load_npz(path, ("X", "y"), "--data")
    X, y = arr["X"], _labels(arr["y"])
    check_shapes({"X": X, "y": y}, {"X": ("P", "N"), "y": ("P",)})
    return X, y


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
                      progress=None, **run_options) -> Any:
    """``engine.api.log_partition`` with the CLI's options mapped onto the chosen estimator's keywords."""
    import jax

    method = resolve_method(model, method)
    mapping = _METHOD_OPTIONS[method]
    for name in run_options:
        if name not in mapping:
            raise ValueError(f"{_RUN_FLAGS[name]} does not apply to method {method!r}"
                             + (" (auto picked exact; choose --method ais, ti or pt)" if method == "exact" else ""))
    options = {mapping[k]: v for k, v in run_options.items()}
    from .api import log_partition

    if method == "exact":
        return log_partition(model, beta, method="exact")
    options["kernel"] = kernel
    if progress is not None and method in ("pt", "ti"):
        options["progress"] = lambda done, total: progress(f"{method.upper()} sampling", done / max(total, 1))
    return log_partition(model, beta, method=method, key=jax.random.key(seed), **options)


def run_thermodynamics(model: Any, betas, *, method: str, seed: int, kernel: str = "auto", progress=None,
                       **run_options):
    """``engine.api.thermodynamics`` on the β grid; returns its ``xarray.Dataset``."""
    import jax

    from .api import thermodynamics

    options = {"kernel": kernel, **run_options}
    if progress is not None:
        options["progress"] = lambda done, total: progress(f"{method.upper()} sampling", done / max(total, 1))
    return thermodynamics(model, betas, key=jax.random.key(seed), method=method, **options)


@app.command()
def logz(
    model: ModelArg,
    beta: Annotated[float, _opt("--beta", "inverse temperature β ≥ 0.")],
    method: Annotated[str, _opt("--method", "auto, ais, ti, pt or exact (auto: exact if known, else ais).",
                                show_default=True)] = "auto",
    seed: SeedOpt = 0,
    chains: ChainsOpt = None,
    steps: StepsOpt = None,
    n_betas: NBetasOpt = None,
    kernel: KernelOpt = "auto",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    L: LOpt = None, M: MOpt = None, J: JOpt = None, h: HOpt = None,  # noqa: E741
    n: NOpt = None, p: POpt = None, alpha: AlphaOpt = None, data: DataOpt = None,
    couplings: CouplingsOpt = None, weights: WeightsOpt = None, n_visible: NVisOpt = None,
    n_hidden: NHidOpt = None, units: UnitsOpt = None, patterns: PatternsOpt = None, sigma_w: SigmaOpt = None,
    disorder_seed: DisorderOpt = None,
) -> None:
    """Estimate log Z(β) of a built-in MODEL with its standard error, and compare with the exact value when known."""
    beta = check_beta(beta, "--beta")
    method = check_choice("method", method, METHODS)
    opts = _model_options(L=L, M=M, J=J, h=h, n=n, p=p, alpha=alpha, data=data, couplings=couplings,
                          weights=weights, n_visible=n_visible, n_hidden=n_hidden, units=units,
                          patterns=patterns, sigma_w=sigma_w)
    built = build_model(model, opts, seed=seed if disorder_seed is None else disorder_seed)
    run_opts = _run_options(chains=chains, steps=steps, n_betas=n_betas)
    with _Progress(not quiet and not json_out) as bar:
        t0 = time.perf_counter()
        est = run_log_partition(built.model, beta, method=method, seed=seed, kernel=kernel,
                                progress=bar.callback(), **run_opts)
        wall = time.perf_counter() - t0
    exact = exact_log_partition(built.model, beta)
    z = est.z_score(exact) if exact is not None and est.method != "exact" else None
    result = {
        "model": model, "model_options": built.options, "dim": built.dim, "beta": beta, "method": est.method,
        "estimate": est.value, "stderr": est.stderr, "exact": exact, "z": z, "log_Z0": built.log_z0,
        "wall_s": wall, "seed": seed, "diagnostics": est.diagnostics,
    }
    if json_out:
        _print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"log Z of {built.label} at β = {beta:g}")
    for col in ("method", "estimate", "± stderr", "exact", "z", "wall s"):
        table.add_column(col, justify="right" if col != "method" else "left")
    table.add_row(est.method, _fmt(est.value), _fmt(est.stderr, 2), _fmt(exact),
                  "—" if z is None else f"{z:+.2f}", f"{wall:.2f}")
    _console().print(table)


def _run_options(*, chains: int | None, steps: int | None, n_betas: int | None) -> dict[str, int]:
    out = {}
    for name, value, flag in (("n_chains", chains, "--chains"), ("n_steps", steps, "--steps"),
                              ("n_betas", n_betas, "--n-betas")):
        if value is not None:
            out[name] = check_positive_int(value, flag)
    return out


def _parse_betas(betas: str | None, beta_min: float | None, beta_max: float | None, n_betas: int | None):
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
    L: LOpt = None, M: MOpt = None, J: JOpt = None, h: HOpt = None,  # noqa: E741
    n: NOpt = None, p: POpt = None, alpha: AlphaOpt = None, data: DataOpt = None,
    couplings: CouplingsOpt = None, weights: WeightsOpt = None, n_visible: NVisOpt = None,
    n_hidden: NHidOpt = None, units: UnitsOpt = None, patterns: PatternsOpt = None, sigma_w: SigmaOpt = None,
    disorder_seed: DisorderOpt = None,
) -> None:
    """Thermodynamics U, F, S, C, log Z (± stderr) of a built-in MODEL on a β grid."""
    grid = _parse_betas(betas, beta_min, beta_max, n_betas)
    method = check_choice("method", method, THERMO_METHODS)
    if out is not None and out.suffix not in (".nc", ".nc4", ".h5"):
        raise ValueError(f"--out must be a netCDF file ending in .nc, got {str(out)!r}")
    opts = _model_options(L=L, M=M, J=J, h=h, n=n, p=p, alpha=alpha, data=data, couplings=couplings,
                          weights=weights, n_visible=n_visible, n_hidden=n_hidden, units=units,
                          patterns=patterns, sigma_w=sigma_w)
    built = build_model(model, opts, seed=seed if disorder_seed is None else disorder_seed)
    run_opts = _run_options(chains=chains, steps=steps, n_betas=None)
    with _Progress(not quiet and not json_out) as bar:
        ds = run_thermodynamics(built.model, grid, method=method, seed=seed, kernel=kernel,
                                progress=bar.callback(), **run_opts)
    exact = [exact_log_partition(built.model, float(b)) for b in ds["beta"].values]
    if all(e is not None for e in exact):
        ds = ds.assign(log_Z_exact=("beta", [float(e) for e in exact]))
    ds.attrs.update(model=model, model_options=str(built.options), method=method, seed=seed)
    if out is not None:
        registry.write_netcdf(ds, out)
    if json_out:
        _print_json({"model": model, "model_options": built.options, "method": method,
                     "data": {k: ds[k].values for k in ds.variables}, "attrs": dict(ds.attrs),
                     "out": str(out) if out else None})
        return
    from rich.table import Table

    table = Table(title=f"thermodynamics of {built.label} [{method}]")
    cols = [c for c in ("U", "F", "S", "C", "log_Z") if c in ds]
    table.add_column("β", justify="right")
    for c in cols:
        table.add_column(c, justify="right")
    if "log_Z_exact" in ds:
        table.add_column("log Z exact", justify="right")
        table.add_column("z", justify="right")
    for i, b in enumerate(ds["beta"].values):
        cells = [f"{b:.4g}"]
        for c in cols:
            err = ds[f"{c}_stderr"].values[i] if f"{c}_stderr" in ds else math.nan
            cells.append(f"{ds[c].values[i]:.6g} ± {err:.2g}")
        if "log_Z_exact" in ds:
            exact_i, se = float(ds["log_Z_exact"].values[i]), float(ds["log_Z_stderr"].values[i])
            z = (float(ds["log_Z"].values[i]) - exact_i) / se if se > 0 else math.nan
            cells += [f"{exact_i:.6g}", f"{z:+.2f}"]
        table.add_row(*cells)
    _console().print(table)
    if out is not None:
        _console().print(f"wrote {out}")


@app.command()
def reproduce(
    name: Annotated[str | None, typer.Argument(help="experiment name (see --list).", show_default=False)] = None,
    list_: Annotated[bool, _opt("--list", "list the registered experiments.")] = False,
    all_: Annotated[bool, _opt("--all", "run every experiment and write index.md.")] = False,
    full: Annotated[bool, _opt("--full", "paper-size run (slow) instead of the quick one.")] = False,
    out: Annotated[Path, _opt("--out", "output folder (one sub-folder per experiment).", show_default=True)] = Path(
        "results"),
    seed: SeedOpt = 0,
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
        _console().print(table)
        return
    if all_ == (name is not None):
        raise ValueError("reproduce needs an experiment NAME or --all (see --list)")
    names = list(registry.EXPERIMENTS) if all_ else [name]
    if not all_:
        registry.load_experiment(name)  # unknown name -> ValueError before anything runs
    results, n_fail = [], 0
    console = _console()
    for key in names:
        with _Progress(not quiet) as bar:
            try:
                res = registry.run_experiment(key, out, full=full, seed=seed, size=size, progress=bar.callback())
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
        _print_rows(console, key, res)
    if all_:
        index = registry.write_index(results, out)
        console.print(f"wrote {index}")
    if n_fail:
        print(f"error: {n_fail} check(s) failed", file=sys.stderr)
        raise typer.Exit(1)


def _print_rows(console, name: str, res: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{name}  →  {res.get('out_dir', '')}")
    for col in ("quantity", "method", "measured", "± stderr", "theory", "z", "pass", "wall s"):
        table.add_column(col, justify="left" if col in ("quantity", "method") else "right")
    for r in res["rows"]:
        passed = r.get("pass")
        verdict = "" if passed is None else ("[green]yes[/]" if passed else "[red]NO[/]")
        z = r.get("z")
        table.add_row(str(r.get("quantity", "")), str(r.get("method", "")), _fmt(r.get("measured"), 7),
                      _fmt(r.get("stderr"), 2), _fmt(r.get("theory"), 7),
                      "" if z is None else f"{z:+.2f}", verdict, _fmt(r.get("wall_s"), 3))
    console.print(table)


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
