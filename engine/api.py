"""The public entry points: ``log_partition`` (one β, any method) and ``thermodynamics`` (a β grid -> xarray).

``log_partition(model, beta, method=...)`` dispatches to

* ``"exact"``: ``model.exact_log_partition`` (closed form: Kaufman for the 2D Ising model, summed-out RBM,
  Gaussian evidence) or, for discrete models with dim ≤ 24, enumeration of all states
  (``models.exact.enumerate_log_partition``); computed in float64;
* ``"ais"``: annealed importance sampling (``engine.ais``; Neal 2001);
* ``"ti"``: thermodynamic integration of ⟨E⟩ (``engine.ti``; Kirkwood 1935, Gelman & Meng 1998);
* ``"pt"``: parallel tempering + geometric bridge sampling (``engine.tempering``);
* ``"smc"``: adaptive tempered SMC / population annealing (``engine.smc``; Del Moral et al. 2006);
* ``"auto"``: exact when available (``engine.exact``), else adaptive SMC — the most robust estimator we have for
  both continuous and discrete models (its error bar comes from independent runs and it checks itself) — run to a
  default accuracy target ``tol = AUTO_TOL`` (0.05 nats) when none is given. ``diagnostics["method_chosen"]`` and
  ``["method_reason"]`` record the choice.

Accuracy targets: with ``tol=`` (nats) the budget (particles, sweeps, runs, temperatures, steps) is grown until the
standard error is ≤ tol AND the estimator calls itself reliable, or until ``max_time`` (seconds, default 600) or
``max_budget`` (particle-steps) is spent; then the last estimate comes back with ``reliable=False``, the reason and
a ``RuntimeWarning`` (``engine.accuracy``). Supported for smc, ais, ti and pt.

``thermodynamics(model, betas, method="ti"|"pt")`` returns U(β), F(β), S(β), C(β) and log Z(β) on a grid with
standard errors, as an ``xarray.Dataset`` with coordinate ``beta``. Conventions (k_B = 1, totals not per site):
U = ⟨E⟩, log Z relative to the model's exact reference log Z(0), F = −log Z/β (NaN at β = 0), S = β(U − F) =
log Z + βU (so S(0) = log Z(0): the entropy of the reference measure), C = β² Var(E).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .logz_estimate import LogZEstimate
from .exact import exact_log_partition_value, exact_source
from .keys import as_key
from .validate import check_beta, check_betas, check_choice, check_nonnegative_int, check_positive_int

__all__ = ["log_partition", "thermodynamics", "exact_log_partition", "resolve_method", "METHODS", "AUTO_TOL"]

METHODS = ("auto", "ais", "smc", "ti", "pt", "exact")
AUTO_TOL = 0.05  # nats: the default accuracy target of method="auto" when no exact value exists
THERMO_METHODS = ("ti", "pt")


def exact_log_partition(model: Any, beta: float) -> LogZEstimate:
    """Exact log Z(β) in float64 (``engine.exact``: the model's closed form, else enumeration).

    Raises:
        ValueError: no exact method applies to this model.
    """
    beta = check_beta(beta, "beta")
    value, source = exact_log_partition_value(model, beta)
    return LogZEstimate(value, 0.0, "exact", beta, {"source": source})


def _estimator(method: str):
    """The estimator function of ``method`` (imported lazily)."""
    if method == "ais":
        from .ais import ais_log_partition as fn
    elif method == "smc":
        from .smc import smc_log_partition as fn
    elif method == "ti":
        from .ti import ti_log_partition as fn
    else:
        from .tempering import pt_log_partition as fn
    return fn


def _auto_choice(model: Any) -> tuple[str, str]:
    """(method, why) of the "auto" rule."""
    source = exact_source(model)
    if source is not None:
        return "exact", f"an exact value exists ({source})"
    kind = getattr(model, "kind", "?")
    return "smc", (f"no exact value for this {kind} model: adaptive SMC (independent runs give an honest error bar; "
                   "it flags itself unreliable)")


def resolve_method(model: Any, method: str) -> str:
    """The ONE "auto" rule: ``"exact"`` when ``engine.exact`` has a value for the model, else ``"smc"`` (adaptive
    SMC, for continuous and discrete models alike); any other method name is checked and returned unchanged."""
    check_choice("method", method, METHODS)
    if method != "auto":
        return method
    return _auto_choice(model)[0]


def log_partition(model: Any, beta: float, *, method: str = "auto", key=None, tol=None, max_time=None,
                  max_budget=None, **options) -> LogZEstimate:
    """log Z(β) of ``model`` with a standard error, by the chosen method, optionally to an accuracy target.

    Args:
        model: a thermodl model (``models/base.py``).
        beta: inverse temperature, finite and ≥ 0.
        method: ``"auto"`` (exact when available, else ``"smc"`` with ``tol`` defaulting to ``AUTO_TOL``),
            ``"ais"``, ``"smc"``, ``"ti"``, ``"pt"`` or ``"exact"``.
        key: ``jax.random.key`` or int seed; required by the stochastic methods.
        tol: target standard error of log Z in nats (> 0). The budget grows until stderr ≤ tol and the estimate is
            reliable (``engine.accuracy``); budget options in ``options`` set the first round. None: one run with
            the given options (except for ``"auto"``, see above).
        max_time: seconds for the whole tol loop (default 600). max_budget: particle-steps (one kernel step of
            one particle / chain / replica; default no limit). When a limit stops the loop first, the result has
            ``reliable=False``, the reason, and a ``RuntimeWarning`` is raised.
        **options: passed to the estimator (``engine.ais.ais_log_partition``, ``engine.smc.smc_log_partition``,
            ``engine.ti.ti_log_partition``, ``engine.tempering.pt_log_partition``).

    Returns:
        ``LogZEstimate``; with a tol, diagnostics also hold ``tol``, ``tol_reached``, ``rounds`` (the budget
        trajectory), ``budget_used``, ``wall_s``; with ``"auto"``, ``method_chosen`` and ``method_reason``.

    Raises:
        ValueError: bad β, tol, max_time or max_budget, unknown method, missing key, a tol for a method without
            tol support, or no exact method for ``method="exact"``.
    """
    beta = check_beta(beta, "beta")
    from .accuracy import _check_limit, check_tol, log_partition_to_tol

    if tol is not None:
        tol = check_tol(tol)
    max_time, max_budget = _check_limit(max_time, "max_time"), _check_limit(max_budget, "max_budget")
    check_choice("method", method, METHODS)
    auto = method == "auto"
    method, why = _auto_choice(model) if auto else (method, "")
    if method == "exact":
        if options:
            raise ValueError(f"method 'exact' takes no options, got {', '.join(sorted(options))}")
        est = exact_log_partition(model, beta)
        if tol is not None:
            est.diagnostics.update(tol=tol, tol_reached=True)
    else:
        if key is None:
            raise ValueError(f"key is required for method {method!r} (pass jax.random.key(seed) or an int seed)")
        if auto and tol is None:
            tol = AUTO_TOL
        if tol is not None:
            est = log_partition_to_tol(model, beta, method, key=as_key(key), tol=tol, max_time=max_time,
                                       max_budget=max_budget, **options)
        else:
            if max_time is not None or max_budget is not None:
                raise ValueError("max_time / max_budget apply only with tol= (an accuracy target)")
            est = _estimator(method)(model, beta, key=as_key(key), **options)
    if auto:
        est.diagnostics.update(method_chosen=method, method_reason=why)
    return est


# ---------------------------------------------------------------------------------------------- thermodynamics
def thermodynamics(
    model: Any,
    betas,
    *,
    key,
    method: str = "ti",
    n_chains: int = 16,
    n_steps: int = 1000,
    n_warmup: int | None = None,
    kernel: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    n_integration: int = 32,
    **options,
):
    """U, F, S, C and log Z on a β grid, with standard errors, as an ``xarray.Dataset``.

    Args:
        model: a thermodl model.
        betas: float [K] strictly increasing, ≥ 0. A β = 0 point is added internally (and dropped from the
            output) when missing: log Z is integrated (TI) or bridged (PT) from the exact reference log Z(0).
        key: ``jax.random.key`` or int seed.
        method: ``"ti"`` — independent ``run_ensemble`` chains at every β; U and C from them, log Z by
            integrating U (``engine.ti.ti_integrate``: cubic rule, Monte Carlo + quadrature error; so the grid
            must resolve U(β)); ``"pt"`` — one parallel-tempering run with the grid as a frozen ladder; log Z by
            geometric bridges between neighbours (stderr from the chain-to-chain spread).
        n_chains, n_steps, n_warmup, kernel, progress: passed to the runner. **options: further runner options.
        n_integration: for ``method="ti"``, the user's βs are merged with a quadratic grid of this many points
            from 0 to max(betas) (dense near β = 0, where U(β) of weight ensembles curves most), so that log Z is
            integrated on a grid that resolves U(β) even when the requested βs are few; only the requested βs
            are returned. 0 integrates on the requested βs alone.

    Returns:
        ``xarray.Dataset`` with coordinate ``beta`` [K] and variables U, F, S, C, log_Z and ``<name>_stderr``
        for each, plus diagnostics ``acceptance``, ``rhat`` (R-hat of E), ``ess`` (ESS of E), ``n_excluded``
        (non-finite chains) and, for TI, ``log_Z_mc_stderr`` and ``log_Z_quadrature_error``; attrs ``method``,
        ``kernel``, ``n_chains``, ``n_steps``, ``log_Z0`` and method-specific ones. S_stderr adds the errors of
        log Z and βU in quadrature, ignoring their (negative, for TI) correlation: conservative.
    """
    import xarray as xr

    check_choice("method", method, THERMO_METHODS)
    user_betas = check_betas(betas, "betas", increasing=True)
    n_chains = check_positive_int(n_chains, "n_chains")
    n_steps = check_positive_int(n_steps, "n_steps")
    if n_warmup is not None:
        n_warmup = check_nonnegative_int(n_warmup, "n_warmup")
    key = as_key(key)
    grid = np.union1d([0.0], user_betas)
    if method == "ti" and n_integration and user_betas[-1] > 0:
        from .ti import ti_grid

        n_integration = check_positive_int(n_integration, "n_integration")
        grid = np.union1d(grid, ti_grid(float(user_betas[-1]), max(n_integration, 3), "quadratic"))
    # drop internal points that coincide with a requested β up to rounding
    keep = np.concatenate([[True], np.diff(grid) > 1e-12 * max(1.0, float(grid[-1]))])
    grid = grid[keep]
    out_index = np.searchsorted(grid, user_betas - 1e-12 * max(1.0, float(grid[-1])))
    log_z0 = float(model.log_reference_partition())
    attrs: dict[str, Any] = {"method": method, "n_chains": n_chains, "n_steps": n_steps, "log_Z0": log_z0,
                             "model": type(model).__name__}
    extra: dict[str, np.ndarray] = {}

    if method == "ti":
        from .ti import ti_integrate

        if grid.size < 3:
            raise ValueError(f"method 'ti' needs at least 3 grid points including beta=0, got betas={user_betas!r}")
        from .ensemble import run_ensemble

        res = run_ensemble(model, grid, key=key, n_chains=n_chains, n_steps=n_steps, n_warmup=n_warmup,
                           kernel=kernel, progress=progress, **options)
        u, c = res.mean_energy(), res.specific_heat()
        if np.any(u.n_used < 2):
            bad = grid[int(np.argmin(u.n_used))]
            raise ValueError(f"fewer than 2 finite chains at beta={bad!r}; cannot estimate errors")
        curve = ti_integrate(grid, u.mean, u.stderr, log_z0=log_z0)
        log_z, log_z_se = curve.log_z, curve.stderr
        extra = {"log_Z_mc_stderr": curve.mc_stderr, "log_Z_quadrature_error": curve.quadrature_error}
        acceptance, rhat, ess = res.acceptance_rate().mean, res.rhat("energy"), res.ess("energy")
        n_excl = u.n_excluded
        attrs.update(kernel=res.kernel, n_warmup=res.n_warmup)
        extra["step_size"] = np.asarray(res.step_size, np.float64)
    else:
        from .tempering import run_tempering

        if grid.size < 2:
            raise ValueError(f"method 'pt' needs at least 2 temperatures, got betas={user_betas!r}")
        res = run_tempering(model, grid, key=key, n_chains=n_chains, n_steps=n_steps, n_warmup=n_warmup,
                            kernel=kernel, adapt_ladder=False, progress=progress, **options)
        u, c = res.mean_energy(), res.specific_heat()
        from .tempering import bridge_curve

        rel, rel_se, _ = bridge_curve(res)
        log_z, log_z_se = log_z0 + rel, rel_se
        acceptance, rhat, ess = res.acceptance_rate().mean, res.rhat("energy"), res.ess("energy")
        n_excl = u.n_excluded
        attrs.update(kernel=res.kernel, n_warmup=res.n_warmup, round_trip_rate=float(res.round_trip_rate))
        extra["swap_rate_up"] = np.append(np.asarray(res.swap_rate, np.float64), np.nan)  # pair (k, k+1)
        extra["step_size"] = np.asarray(res.step_size, np.float64)

    b = grid
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(b > 0, -log_z / b, np.nan)
        f_se = np.where(b > 0, log_z_se / b, np.nan)
    s = log_z + b * u.mean
    s_se = np.hypot(log_z_se, b * u.stderr)
    data = {
        "U": u.mean, "U_stderr": u.stderr,
        "F": f, "F_stderr": f_se,
        "S": s, "S_stderr": s_se,
        "C": c.mean, "C_stderr": c.stderr,
        "log_Z": log_z, "log_Z_stderr": log_z_se,
        "acceptance": acceptance, "rhat": rhat, "ess": ess, "n_excluded": np.asarray(n_excl),
        **extra,
    }
    ds = xr.Dataset({k: ("beta", np.asarray(v, np.float64)[out_index]) for k, v in data.items()},
                    coords={"beta": user_betas}, attrs=attrs)
    return ds
