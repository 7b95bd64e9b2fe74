"""The main job: every log-partition estimator against an exact solution (``thermodl reproduce exact-checks``).

Each check estimates log Z(β) with a Monte Carlo method through the public API (``engine.api.log_partition``)
and compares it with an exact value computed in float64; it passes by the one rule of ``common.check_row``:
|z| = |estimate − exact| / stderr < 3 (the 99.73 % normal quantile; an estimator's stderr has no stated dof).

* 2D Ising model on L×L tori, β below, at and above β_c = ½ ln(1 + √2), vs Kaufman's exact finite-lattice
  solution (B. Kaufman, Phys. Rev. 76, 1232 (1949)): a small torus and L = 16, with AIS (Neal 2001) and parallel
  tempering (bridge sampling between replicas; Swendsen & Wang 1986, Syed et al. 2021) / thermodynamic
  integration.
* RBM: log Z vs the exact sum with the hidden layer summed out analytically.
* Binary ±1 perceptron on Gardner data (N ≈ 15): log Z at large β → log of the number of solutions, vs
  enumeration of all 2^N weight vectors (E. Gardner & B. Derrida, J. Phys. A 21, 271 (1988)).
* Bayesian linear regression written as a flax ``nnx.Linear`` weight ensemble (squared loss, Gaussian prior):
  the evidence vs its closed form.
* Sherrington–Kirkpatrick spin glass (N ≤ 16) below T = 1 vs enumeration.

Writes ``results.md`` / ``results.csv`` (check, method, estimate ± stderr, exact, z, pass, wall time of the
estimate including its compilation),
``results.nc`` and ``results.png``: log Z per spin of the 2D Ising model vs β, estimates with error bars over
Kaufman's exact curves, and the z-score of every check. ``size``: ``"tiny"`` (tests, seconds), ``"small"``
(default, a few CPU-minutes), ``"full"`` (``--full``: larger systems, more chains).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from thermodl.experiments import common

NAME = "exact-checks"
DESCRIPTION = "log Z estimators (AIS, PT, TI) vs exact solutions: 2D Ising (Kaufman), RBM, perceptron, linear, SK"

BETA_C = 0.5 * math.log1p(math.sqrt(2.0))

# Monte Carlo budgets per method and size. AIS: chains × temperatures; PT / TI: chains × steps.
_BUDGET = {
    "tiny": {"ais": dict(n_chains=64, n_temperatures=64), "pt": dict(n_chains=8, n_steps=300),
             "ti": dict(n_chains=8, n_steps=300, n_betas=12)},
    "small": {"ais": dict(n_chains=256, n_temperatures=256), "pt": dict(n_chains=16, n_steps=1500),
              "ti": dict(n_chains=16, n_steps=1000, n_betas=24)},
    "full": {"ais": dict(n_chains=1024, n_temperatures=1024), "pt": dict(n_chains=32, n_steps=5000),
             "ti": dict(n_chains=32, n_steps=4000, n_betas=48)},
}
# Per size: Ising sides and their methods, βs, and the sizes of the other models.
_SIZES = {
    "tiny": dict(ising=((4, ("ais",)),), betas=(BETA_C,), rbm=(6, 4), rbm_methods=("ais",), perceptron=(9, 4),
                 perceptron_beta=6.0, linear=(2, 16), sk=8, sk_beta=1.5, sk_methods=("pt",)),
    "small": dict(ising=((4, ("ais", "pt")), (16, ("ais", "ti"))), betas=(0.3, BETA_C, 0.6), rbm=(10, 6),
                  rbm_methods=("ais", "pt"), perceptron=(15, 7), perceptron_beta=10.0, linear=(4, 32), sk=14,
                  sk_beta=1.5, sk_methods=("ais", "pt")),
    "full": dict(ising=((4, ("ais", "pt", "ti")), (16, ("ais", "pt", "ti")), (32, ("ais", "pt"))),
                 betas=(0.2, 0.3, 0.4, BETA_C, 0.5, 0.6, 0.8), rbm=(16, 12), rbm_methods=("ais", "pt"),
                 perceptron=(17, 9), perceptron_beta=12.0, linear=(8, 64), sk=16, sk_beta=2.0,
                 sk_methods=("ais", "pt", "ti")),
}
SIZES = tuple(_SIZES)


class Check(NamedTuple):
    """One exact check: ``make_model()`` builds the model, ``method`` estimates log Z(``beta``)."""

    quantity: str
    group: str  # e.g. "ising L=16" (the figure plots Ising groups), "rbm", "sk", ...
    make_model: Callable[[], Any]
    beta: float
    method: str
    options: dict


def _ising(L: int):
    from thermodl.models.ising import Ising2D

    return lambda: Ising2D(L)


def _rbm(nv: int, nh: int, key):
    def make():
        from thermodl.models.rbm import RBM

        return RBM.random(key, nv, nh, scale=1.0, units="binary")  # W, a, b ~ N(0, 1): log Z/Z(0) = O(1)

    return make


def _perceptron(N: int, P: int, key):
    def make():
        from thermodl.models.data import gardner_patterns
        from thermodl.models.perceptron import BinaryPerceptron

        X, y = gardner_patterns(key, P, N)[:2]
        return BinaryPerceptron(X, y)

    return make


def _linear_data(d: int, P: int, key):
    kx, kw, ke = jax.random.split(key, 3)
    X = jax.random.normal(kx, (P, d))
    y = X @ jax.random.normal(kw, (d,)) + 0.5 * jax.random.normal(ke, (P,))
    return X, y


def _linear(d: int, P: int, key):
    """Bayesian linear regression as a flax nnx.Linear weight ensemble (squared loss, N(0, 1) prior)."""

    def make():
        from flax import nnx

        from thermodl.models.priors import gaussian
        from thermodl.models.weights import weight_ensemble

        X, y = _linear_data(d, P, key)
        net = nnx.Linear(d, 1, use_bias=False, rngs=nnx.Rngs(0))
        return weight_ensemble(net, X, y, loss="squared", prior=gaussian(1.0, fan_in_scaling=False))

    return make


def _linear_exact(d: int, P: int, key) -> Callable[[float], float]:
    def exact(beta: float) -> float:
        from thermodl.models.linear import BayesianLinear

        X, y = _linear_data(d, P, key)
        with jax.enable_x64(True):
            model = BayesianLinear(jnp.asarray(X, jnp.float64), jnp.asarray(y, jnp.float64), sigma_w=1.0)
            return float(model.exact_log_partition(beta))

    return exact


def _sk(N: int, key):
    def make():
        from thermodl.models.sk import SK

        return SK.random(key, N)

    return make


def build_checks(size: str, seed: int) -> tuple[list[Check], dict[str, Callable[[float], float]]]:
    """The list of checks for a size, and exact-value overrides keyed by group (models whose Monte Carlo
    representation differs from the exact one, e.g. the flax linear ensemble vs ``BayesianLinear``)."""
    size, cfg = common.resolve_size(size, False, _SIZES, default="small")
    budget = _BUDGET[size]
    key = jax.random.key(seed)
    k_rbm, k_perc, k_lin, k_sk = (jax.random.fold_in(key, 1000 + i) for i in range(4))
    checks = []
    for L, methods in cfg["ising"]:
        for beta in cfg["betas"]:
            for method in methods:
                options = dict(budget[method])
                if method == "ais" and L >= 16:  # log-weight variance grows with N: anneal 4x more slowly
                    options["n_temperatures"] *= 4
                checks.append(Check(f"Ising {L}x{L} log Z, beta={beta:.4g}", f"ising L={L}", _ising(L), beta,
                                    method, options))
    nv, nh = cfg["rbm"]
    for method in cfg["rbm_methods"]:
        checks.append(Check(f"RBM {nv}x{nh} log Z, beta=1", "rbm", _rbm(nv, nh, k_rbm), 1.0, method, budget[method]))
    N, P = cfg["perceptron"]
    b = cfg["perceptron_beta"]
    checks.append(Check(f"perceptron N={N} P={P} log Z(beta={b:g}) ~ log #solutions", "perceptron",
                        _perceptron(N, P, k_perc), b, "ais", budget["ais"]))
    d, Pl = cfg["linear"]
    checks.append(Check(f"Bayesian linear d={d} P={Pl} log evidence", "linear", _linear(d, Pl, k_lin), 1.0, "ais",
                        budget["ais"]))
    n_sk, b_sk = cfg["sk"], cfg["sk_beta"]
    for method in cfg["sk_methods"]:
        checks.append(Check(f"SK N={n_sk} log Z, beta={b_sk:g}", "sk", _sk(n_sk, k_sk), b_sk, method,
                            budget[method]))
    return checks, {"linear": _linear_exact(d, Pl, k_lin)}


def exact_log_partition(model: Any, beta: float) -> float:
    """The exact log Z(β) in float64: the model's closed form, or enumeration for small discrete models
    (``engine.exact.exact_log_partition_value``)."""
    from thermodl.engine.exact import exact_log_partition_value

    return exact_log_partition_value(model, beta)[0]


def run_check(check: Check, key, exact_override: Callable[[float], float] | None = None) -> dict:
    """Run one check; returns its table row (``common.check_row``) with diagnostics columns."""
    from thermodl.engine.api import log_partition

    model = check.make_model()
    t0 = time.perf_counter()
    est = log_partition(model, check.beta, method=check.method, key=key, **check.options)
    wall = time.perf_counter() - t0
    exact = exact_override(check.beta) if exact_override else exact_log_partition(model, check.beta)
    diag = est.diagnostics
    extra = {}
    if callable(getattr(model, "count_solutions", None)):  # binary perceptron: log Z(β → ∞) = log #solutions
        n_solutions = int(model.count_solutions())
        extra["log_n_solutions"] = math.log(n_solutions) if n_solutions else -math.inf
    return common.check_row(
        check.quantity, check.method, est.value, est.stderr, exact, wall_s=wall, group=check.group,
        beta=float(check.beta), dim=int(model.dim), log_Z0=float(model.log_reference_partition()),
        unreliable=bool(diag.get("unreliable", False)),
        ess=float(diag["ess"]) if "ess" in diag else math.nan, **extra,
    )


def _ising_curves(sides: list[int], beta_max: float, n: int = 161) -> xr.Dataset:
    from thermodl.models.ising import Ising2D

    grid = np.linspace(0.0, beta_max, n)
    curves = {}
    with jax.enable_x64(True):
        for L in sides:
            lz = np.asarray(Ising2D(L).exact_log_partition(jnp.asarray(grid)), dtype=np.float64)
            curves[f"log_Z_per_spin_exact_L{L}"] = ("beta_curve", lz / (L * L))
    return xr.Dataset(curves, coords={"beta_curve": grid})


def _figure(rows: list[dict], curves: xr.Dataset):
    fig, (ax, az) = common.new_figure(1, 2, figsize=(11.0, 4.4))
    markers = {"ais": "o", "pt": "s", "ti": "^"}
    colours = {}
    for name in curves.data_vars:
        L = int(name.rsplit("L", 1)[1])
        (line,) = ax.plot(curves["beta_curve"], curves[name], lw=1.2, label=f"Kaufman exact, {L}×{L}")
        colours[f"ising L={L}"] = line.get_color()
    for r in rows:
        if r["group"] in colours:
            n = r["dim"]
            shift = {"ais": -0.006, "pt": 0.0, "ti": 0.006}.get(r["method"], 0.0)
            ax.errorbar(r["beta"] + shift, r["measured"] / n, yerr=3 * r["stderr"] / n, fmt=markers[r["method"]],
                        ms=4, color=colours[r["group"]], mfc="none" if not r["pass"] else None, capsize=2)
    for m, mk in markers.items():
        if any(r["method"] == m and r["group"] in colours for r in rows):
            ax.plot([], [], mk, color="k", mfc="none", label=f"{m.upper()} estimate (±3σ)")
    ax.axvline(BETA_C, color="0.6", ls=":", lw=1)
    ax.set_xlabel("β")
    ax.set_ylabel("log Z / N")
    ax.set_title("2D Ising torus: log Z per spin")
    ax.legend(fontsize=8)
    common.z_panel(az, rows, [f"{r['quantity']} [{r['method']}]" for r in rows],
                   xlabel="z = (estimate − exact) / stderr")
    return fig


def run(out_dir: Path, *, full: bool = False, seed: int = 0, size: str | None = None,
        progress: Callable[[str, float], None] | None = None) -> dict:
    """Run every exact check and write the table, netCDF data and figure into ``out_dir``.

    Args:
        out_dir: output folder.
        full: larger systems and budgets (``size="full"``).
        seed: base seed; check k uses ``fold_in(key(seed), k)``.
        size: ``"tiny"`` | ``"small"`` | ``"full"``; overrides ``full``.
        progress: optional ``progress(description, fraction_done)``.
    Returns:
        the protocol's result dict (see ``engine.registry``).
    """
    size, _ = common.resolve_size(size, full, _SIZES, default="small")
    checks, overrides = build_checks(size, seed)
    base = jax.random.key(seed)
    rows = []
    for k, check in enumerate(checks):
        if progress:
            progress(f"{check.quantity} [{check.method}]", k / len(checks))
        rows.append(run_check(check, jax.random.fold_in(base, k), overrides.get(check.group)))
    if progress:
        progress("writing results", 1.0)
    sides = sorted({int(r["group"].split("=")[1]) for r in rows if r["group"].startswith("ising")})
    curves = _ising_curves(sides, max(0.8, max(r["beta"] for r in rows if r["group"].startswith("ising")) + 0.05))
    curves.attrs.update(size=size, seed=seed, beta_c=BETA_C, jax=jax.__version__,
                        device=str(jax.devices()[0].platform))
    return common.finish(out_dir, rows, figure=_figure(rows, curves), data=curves)
