"""``thermodynamics(model, betas, method="ti"|"pt")``: U(β), F(β), S(β), C(β) and log Z(β) on a grid, with standard
errors and the honesty contract per β, as an ``xarray.Dataset`` with coordinate ``beta`` (re-exported by
``engine.api``).

Conventions (k_B = 1, totals not per site): U = ⟨E⟩, log Z relative to the model's exact reference log Z(0),
F = −log Z/β (NaN at β = 0), S = β(U − F) = log Z + βU (so S(0) = log Z(0): the entropy of the reference measure),
C = β² Var(E).

Error bars: U from the spread of the independent chains' (or PT systems') means; C from the pooled variance of all
draws with a leave-one-chain-out jackknife over independent chains (``diagnostics.pooled_variance``, which sees the
autocorrelation of E and E² through the chain-to-chain spread), widened for its few degrees of freedom
(``diagnostics.few_chains_factor``); log Z by TI (Monte Carlo + quadrature) or PT bridges (spread over systems).

Reliability (``engine.reliability``): variable ``reliable`` [K] (bool); attrs ``n_unreliable``, ``reasons`` (all
distinct reasons joined by "; ") and ``reasons_by_beta`` (one line "beta = b: reasons" per unreliable β; attributes
rather than a string variable, so every variable along β stays numeric for sweeps and netCDF); one
``RuntimeWarning`` when any β is not reliable. A β point fails when its own chains fail a rule (R-hat of E > 1.1,
frozen chains, fewer than 4 finite chains) or — since log Z, F and S at β integrate or bridge from 0 — when any grid point below it fails, when TI's
quadrature bound dominates its log Z error bar, or (PT) when the run's mixing rules fail (round trips, swap rates).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import observables as obs
from . import reliability as rel
from .keys import as_key
from .validate import check_betas, check_choice, check_nonnegative_int, check_positive_int

__all__ = ["thermodynamics", "THERMO_METHODS"]

THERMO_METHODS = ("ti", "pt")


def _per_chain(res) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean [T, S], variance [T, S], n_used [T]) of E per chain/system, non-finite ones NaN."""
    tot = obs.split_moments_total(res.energy)
    mu = np.asarray(tot.mean, np.float64)
    count = np.broadcast_to(np.asarray(tot.count, np.float64), mu.shape)
    var = np.asarray(tot.m2, np.float64) / np.maximum(count - 1, 1)
    T = len(res.betas)
    bad = np.asarray(res.nonfinite, bool).reshape(T, -1)
    mu, var = np.where(bad, np.nan, mu.reshape(T, -1)), np.where(bad, np.nan, var.reshape(T, -1))
    return mu, var, np.isfinite(mu).sum(axis=1)


def _point_reasons(grid, res, method) -> list[list[str]]:
    """Per grid point, the reasons of its own chains (R-hat, frozen, few chains)."""
    mu, var, n_used = _per_chain(res)
    rhat = np.asarray(res.rhat("energy"), np.float64).reshape(len(grid), -1).max(axis=1)
    acc = np.asarray(res.acceptance_rate().mean, np.float64)
    out = []
    for k in range(len(grid)):
        r, _ = rel.equilibrium_reasons(grid[k:k + 1], rhat[k:k + 1], acc[k:k + 1], mu[k:k + 1], var[k:k + 1],
                                       n_used[k:k + 1], what="chains" if method == "ti" else "PT systems",
                                       check_frozen=method == "ti")
        out.append([x.replace(" (1 of 1)", "") for x in r])
    return out


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
    """U, F, S, C and log Z on a β grid, with standard errors and per-β reliability, as an ``xarray.Dataset``.

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
        for each, ``reliable`` [K] (bool), plus diagnostics
        ``acceptance``, ``rhat`` (R-hat of E), ``ess`` (ESS of E), ``n_excluded`` (non-finite chains) and, for
        TI, ``log_Z_mc_stderr`` and ``log_Z_quadrature_error``; attrs ``method``, ``kernel``, ``n_chains``,
        ``n_steps``, ``log_Z0``, ``n_unreliable``, ``reasons``, ``reasons_by_beta`` and method-specific ones.
        S_stderr adds the errors of log Z and βU in quadrature, ignoring their (negative, for TI) correlation:
        conservative.
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
    global_reasons: list[str] = []
    log_z_reasons: list[list[str]] = [[] for _ in grid]

    if method == "ti":
        from .ensemble import run_ensemble
        from .ti import ti_integrate

        if grid.size < 3:
            raise ValueError(f"method 'ti' needs at least 3 grid points including beta=0, got betas={user_betas!r}")
        res = run_ensemble(model, grid, key=key, n_chains=n_chains, n_steps=n_steps, n_warmup=n_warmup,
                           kernel=kernel, progress=progress, **options)
        u = res.mean_energy()
        if np.any(u.n_used < 2):
            bad = grid[int(np.argmin(u.n_used))]
            raise ValueError(f"fewer than 2 finite chains at beta={bad!r}; cannot estimate errors")
        curve = ti_integrate(grid, u.mean, u.stderr, log_z0=log_z0)
        log_z, log_z_se = curve.log_z, curve.stderr
        extra = {"log_Z_mc_stderr": curve.mc_stderr, "log_Z_quadrature_error": curve.quadrature_error}
        for k in range(grid.size):
            log_z_reasons[k] = [f"log Z: {r}" for r in rel.quadrature_reason(float(curve.quadrature_error[k]),
                                                                              float(curve.mc_stderr[k]))]
        attrs.update(kernel=res.kernel, n_warmup=res.n_warmup)
        extra["step_size"] = np.asarray(res.step_size, np.float64)
    else:
        from .tempering import bridge_curve, run_tempering

        if grid.size < 2:
            raise ValueError(f"method 'pt' needs at least 2 temperatures, got betas={user_betas!r}")
        res = run_tempering(model, grid, key=key, n_chains=n_chains, n_steps=n_steps, n_warmup=n_warmup,
                            kernel=kernel, adapt_ladder=False, progress=progress, **options)
        u = res.mean_energy()
        rel_z, rel_se, _ = bridge_curve(res)
        log_z, log_z_se = log_z0 + rel_z, rel_se
        global_reasons = rel.round_trip_reasons(res.round_trips, res.swap_rate, grid, res.n_steps)
        attrs.update(kernel=res.kernel, n_warmup=res.n_warmup, round_trip_rate=float(res.round_trip_rate))
        extra["swap_rate_up"] = np.append(np.asarray(res.swap_rate, np.float64), np.nan)  # pair (k, k+1)
        extra["step_size"] = np.asarray(res.step_size, np.float64)
    c = res.specific_heat()
    acceptance, rhat, ess = res.acceptance_rate().mean, res.rhat("energy"), res.ess("energy")
    n_excl = u.n_excluded

    # reliability per grid point: its own chains, every point below it (log Z, F, S integrate/bridge from 0),
    # its log Z error budget, and the run's global rules
    own = _point_reasons(grid, res, method)
    reasons_k = []
    for k in range(grid.size):
        r = list(global_reasons) + own[k] + log_z_reasons[k]
        below = [i for i in range(k) if own[i]]
        if below:
            r.append(f"log Z, F, S: {len(below)} grid point(s) below β = {grid[k]:.4g} fail "
                     f"(first at β = {grid[below[0]]:.4g}: {own[below[0]][0]})")
        if n_excl[k] if np.ndim(n_excl) else n_excl:
            r.append(f"{int(np.ravel(n_excl)[k])} chains with non-finite energies excluded")
        reasons_k.append("; ".join(r))
    reasons_arr = np.asarray(reasons_k, dtype=object)[out_index].astype(str)
    reliable = reasons_arr == ""

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
    variables = {k: ("beta", np.asarray(v, np.float64)[out_index]) for k, v in data.items()}
    variables["reliable"] = ("beta", reliable)
    unique = list(dict.fromkeys(r for x in reasons_arr if x for r in x.split("; ")))
    # reasons as attributes, not a string variable: every variable along β stays numeric (sweeps store floats)
    attrs.update(n_unreliable=int((~reliable).sum()), reasons="; ".join(unique),
                 reasons_by_beta="\n".join(f"beta = {b:.6g}: {r}" for b, r in zip(user_betas, reasons_arr) if r))
    ds = xr.Dataset(variables, coords={"beta": user_betas}, attrs=attrs)
    if unique:
        rel.warn_unreliable(f"thermodynamics [{method}] at {int((~reliable).sum())} of {reliable.size} betas",
                            unique)
    return ds
