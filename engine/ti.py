"""Thermodynamic integration: log Z(β) = log Z(0) − ∫_0^β ⟨E⟩_b db on a grid of inverse temperatures.

d log Z/dβ = −⟨E⟩_β (Kirkwood, J. Chem. Phys. 3, 300 (1935); path sampling: A. Gelman & X.-L. Meng, Stat. Sci. 13,
163 (1998)). ⟨E⟩ is measured at K grid points by independent equilibrium runs (``engine.ensemble.run_ensemble``)
or by parallel tempering (``engine.tempering.run_tempering``), and integrated by a cumulative piecewise-cubic rule
on the non-uniform grid (each interval integrated exactly on the cubic through its 4 nearest grid points). The
error bar adds in quadrature
  * the Monte Carlo error, propagated linearly through the quadrature weights (independent β points), or from the
    spread of per-chain integrals when the β points share chains (parallel tempering), and
  * a quadrature-error estimate Σ_intervals max_r |cubic − r| over the lower-order rules r (trapezoid and the two
    parabolas through neighbouring points), each counted beyond twice its own Monte Carlo noise and summed without
    cancellation. It bounds the cubic rule's error on
    resolved grids and stays at least of the size of the actual error on coarse ones (checked against Kaufman's
    exact U(β) of the 4×4..16×16 Ising model on linear grids of 5..32 points; only grossly unresolved grids, with
    errors of order 1 in log Z, can escape it), so the error bar stays honest when the grid is too coarse;
    ``diagnostics["quadrature_dominated"]`` flags a run whose error bar is mostly quadrature error.
The default grid (``grid="auto"``) is placed at equal thermodynamic length ∫ √Var(E) db (Gelman & Meng 1998 §4:
the variance-optimal path-sampling density ∝ √(Fisher information) = √Var(E)), measured by a short pilot run on a
quadratic grid β·(k/(K−1))², which concentrates points where C(β)/β² = Var(E) is large.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import numpy as np

from . import observables as obs
from . import reliability as rel
from .logz_estimate import LogZEstimate
from .validate import check_beta, check_betas, check_choice, check_positive_int

__all__ = [
    "TICurve",
    "ti_integrate",
    "ti_curve",
    "ti_grid",
    "ti_log_partition",
    "cumulative_weights",
    "interval_weights",
]


class TICurve(NamedTuple):
    """Cumulative thermodynamic integration on a grid [K].

    Fields:
        log_z: [K] log Z(β_k) (relative to ``log_z0`` at β_0 = 0).
        stderr: [K] total error: ``mc_stderr`` and ``quadrature_error`` added in quadrature.
        mc_stderr: [K] Monte Carlo standard error of the integral.
        quadrature_error: [K] |cubic − trapezoid| estimate of the discretisation error.
    """

    log_z: np.ndarray
    stderr: np.ndarray
    mc_stderr: np.ndarray
    quadrature_error: np.ndarray


def _lagrange_weights(b: np.ndarray, points: int, shift: int) -> np.ndarray:
    """[K−1, K]: interval i integrated exactly on the Lagrange polynomial through ``points`` consecutive grid
    points starting at i − (points//2 − 1) + shift (clipped into the grid); 2-point Gauss–Legendre is exact."""
    K = b.shape[0]
    p = min(K, points)
    h = np.diff(b)
    gauss = np.array([-1.0, 1.0]) / math.sqrt(3.0)
    inc = np.zeros((K - 1, K))
    for i in range(K - 1):
        s = int(np.clip(i - (p // 2 - 1) + shift, 0, K - p))
        nodes = b[s : s + p]
        xs = b[i] + h[i] * (gauss + 1.0) / 2.0  # Gauss points on [β_i, β_{i+1}]
        for j in range(p):
            others = np.delete(nodes, j)
            basis = np.prod((xs[:, None] - others[None, :]) / (nodes[j] - others[None, :]), axis=1)
            inc[i, s + j] += h[i] / 2.0 * basis.sum()
    return inc


def interval_weights(betas: Any, rule: str = "cubic") -> np.ndarray:
    """Weights V [K−1, K] with ∫_{β_i}^{β_{i+1}} f db ≈ Σ_j V[i, j] f(β_j) on a non-uniform increasing grid.

    Args:
        betas: [K] strictly increasing grid (K ≥ 2).
        rule: ``"trapezoid"``; ``"cubic"`` (interval [β_i, β_{i+1}] integrated exactly on the cubic through
            β_{i−1}..β_{i+2}, stencil shifted inwards at the ends); ``"quadratic_left"`` / ``"quadratic_right"``
            (the parabola through β_{i−1}, β_i, β_{i+1} / β_i, β_{i+1}, β_{i+2}).
    Returns:
        float64 [K−1, K].
    """
    b = np.asarray(betas, np.float64)
    rules = {"trapezoid": (2, 0), "cubic": (4, 0), "quadratic_left": (3, -1), "quadratic_right": (3, 0)}
    if rule not in rules:
        raise ValueError(f"unknown rule {rule!r}; choose one of: {', '.join(rules)}")
    return _lagrange_weights(b, *rules[rule])


def cumulative_weights(betas: Any, rule: str = "cubic") -> np.ndarray:
    """Weights W [K, K] with ∫_{β_0}^{β_m} f db ≈ Σ_j W[m, j] f(β_j) (row 0 zero); see ``interval_weights``."""
    inc = interval_weights(betas, rule)
    return np.concatenate([np.zeros((1, inc.shape[1])), np.cumsum(inc, axis=0)])


def ti_integrate(betas: Any, mean_energy: Any, mean_energy_stderr: Any, *, log_z0: float = 0.0) -> TICurve:
    """Cumulative TI with its error budget (see module docstring).

    Args:
        betas: [K] strictly increasing grid starting at 0 (K ≥ 3 for a quadrature-error estimate).
        mean_energy: [K] ⟨E⟩ at each β. mean_energy_stderr: [K] their standard errors (independent across β).
        log_z0: log Z(0) (the model's reference value; 0 gives log Z(β) − log Z(0)).
    Returns:
        ``TICurve`` with [K] arrays.
    """
    b = check_betas(betas, "betas", increasing=True, start_at_zero=True)
    K = b.shape[0]
    if K < 3:
        raise ValueError(f"betas needs at least 3 points (2 give no quadrature-error estimate), got {K}")
    u = np.asarray(mean_energy, np.float64)
    se = np.asarray(mean_energy_stderr, np.float64)
    if u.shape != (K,) or se.shape != (K,):
        raise ValueError(f"mean_energy and mean_energy_stderr must have shape ({K},), got {u.shape} and {se.shape}")
    if not np.isfinite(u).all():
        raise ValueError(f"mean_energy must be finite, got mean_energy[{int(np.argmax(~np.isfinite(u)))}] = "
                         f"{u[~np.isfinite(u)][0]!r}")
    if not (np.isfinite(se).all() and (se >= 0).all()):
        bad = int(np.argmax(~(np.isfinite(se) & (se >= 0))))
        raise ValueError(f"mean_energy_stderr must be finite and >= 0, got mean_energy_stderr[{bad}] = {se[bad]!r}")
    vc = interval_weights(b, "cubic")
    wc = np.concatenate([np.zeros((1, K)), np.cumsum(vc, axis=0)])
    mc = np.sqrt((wc**2) @ se**2)
    # Interval by interval, the largest difference between the cubic and the lower-order rules (trapezoid, both
    # parabolas), summed without cancellation: errors of opposite sign on either side of an inflection (a peak of
    # C(β)) do not hide each other, and an edge interval whose cubic extrapolates badly is caught by a parabola.
    # A difference counts only beyond twice its own Monte Carlo noise: summed absolute values of pure noise would
    # otherwise grow like K (while the Monte Carlo error of the integral, already in the budget, grows like √K).
    local = np.zeros(K - 1)
    for rule in ("trapezoid", "quadratic_left", "quadratic_right"):
        diff = vc - interval_weights(b, rule)
        local = np.maximum(local, np.abs(diff @ u) - 2.0 * np.sqrt((diff**2) @ se**2))
    quad = np.concatenate([[0.0], np.cumsum(local)])
    return TICurve(log_z0 - wc @ u, np.hypot(mc, quad), mc, quad)


def ti_curve(betas: Any, mean_energy: Any, mean_energy_stderr: Any, *, log_z0: float = 0.0):
    """log Z(β_k) − log Z(0) (+ ``log_z0``) and its total standard error on a grid; see ``ti_integrate``.

    Returns:
        (log_Z [K], stderr [K]) float64.
    """
    c = ti_integrate(betas, mean_energy, mean_energy_stderr, log_z0=log_z0)
    return c.log_z, c.stderr


def ti_grid(beta: float, n_betas: int, kind: str = "quadratic", energy_variance: Any = None,
            pilot_betas: Any = None) -> np.ndarray:
    """An integration grid [n_betas] from 0 to β.

    Args:
        beta: end point (> 0). n_betas: K ≥ 3.
        kind: ``"linear"``; ``"quadratic"`` β·(k/(K−1))²; or ``"thermodynamic"``: equal thermodynamic length
            ∫ √Var(E) db from a pilot measurement ``energy_variance`` [P] at ``pilot_betas`` [P] (interpolated
            linearly; the density is floored at 25% of its mean so no region is left empty).
    Returns:
        float64 [K], strictly increasing, starting at 0 and ending at β.
    """
    beta = check_beta(beta, "beta", allow_zero=False)
    K = check_positive_int(n_betas, "n_betas")
    if K < 3:
        raise ValueError(f"n_betas must be at least 3, got {K}")
    check_choice("grid", kind, ("linear", "quadratic", "thermodynamic"))
    k = np.linspace(0.0, 1.0, K)
    if kind == "linear":
        return beta * k
    if kind == "quadratic":
        return beta * k**2
    pb = check_betas(pilot_betas, "pilot_betas", increasing=True, start_at_zero=True)
    var = np.asarray(energy_variance, np.float64)
    if var.shape != pb.shape:
        raise ValueError(f"energy_variance must have the shape of pilot_betas {pb.shape}, got {var.shape}")
    dens = np.sqrt(np.clip(np.nan_to_num(var, nan=0.0, posinf=0.0), 0.0, None))
    fine = np.linspace(0.0, beta, 2001)
    d = np.interp(fine, pb, dens)
    d = d + 0.25 * max(d.mean(), 1e-300)
    length = np.concatenate([[0.0], np.cumsum(0.5 * (d[1:] + d[:-1]) * np.diff(fine))])
    grid = np.interp(np.linspace(0.0, length[-1], K), length, fine)
    grid[0], grid[-1] = 0.0, beta
    return grid


def ti_log_partition(
    model: Any,
    beta: float,
    *,
    key: Any,
    n_betas: int = 32,
    grid: Any = "auto",
    n_chains: int = 16,
    n_steps: int = 1000,
    n_warmup: int | None = None,
    kernel: str = "auto",
    sampler: str = "ensemble",
    progress: Callable[[int, int], None] | None = None,
    **options,
) -> LogZEstimate:
    """log Z(β) by thermodynamic integration of ⟨E⟩ over a β grid.

    Args:
        model: a thermodl model. beta: target inverse temperature (≥ 0; β = 0 returns log Z(0) exactly).
        key: PRNG key (or int seed). n_betas: grid size K (≥ 3).
        grid: ``"auto"`` (equal thermodynamic length from a pilot run of the same sampler with n_steps // 4 steps
            on the quadratic grid), ``"quadratic"``, ``"linear"``, or an explicit increasing array [K] from 0 to β.
        n_chains, n_steps, n_warmup, kernel: per grid point (``run_ensemble``) or per PT system.
        sampler: ``"ensemble"`` (independent chains at each β, ``engine.ensemble.run_ensemble``) or ``"pt"``
            (parallel tempering with the grid as a frozen ladder, ``engine.tempering.run_tempering``; the Monte
            Carlo error then comes from the spread of per-chain integrals since the β points share chains).
        progress: ``progress(steps_done, steps_total)`` callback. **options: passed to the sampler runner.

    Returns:
        ``LogZEstimate(method="ti")``; diagnostics: grid [K], mean_energy [K], mean_energy_stderr [K],
        mc_stderr, quadrature_error, quadrature_dominated, n_excluded_chains, acceptance, sampler, rhat,
        reliable, reasons, unreliable. ``reliable`` is False (with ``reasons``, and a ``RuntimeWarning``) when a
        rule of ``engine.reliability`` fails: R-hat of E above 1.1 at some β (chains in different states), frozen
        chains at some β (acceptance < 1 % while the chains are not all at one constant energy), fewer than 4
        finite chains, the quadrature bound dominating the error bar, non-finite chains; with ``sampler="pt"``
        also too few round trips per system and swap bottlenecks.
    """
    beta = check_beta(beta, "beta")
    log_z0 = float(model.log_reference_partition())
    if beta == 0:
        return LogZEstimate(log_z0, 0.0, "ti", 0.0, {"note": "beta = 0: exact reference value"})
    n_betas = check_positive_int(n_betas, "n_betas")
    n_steps = check_positive_int(n_steps, "n_steps")
    check_choice("sampler", sampler, ("ensemble", "pt"))
    import jax

    from .keys import as_key

    key = as_key(key)

    def run(betas, key, steps, warmup, progress):
        """(per-chain ⟨E⟩ [K, chains] with non-finite chains as NaN, pooled Var(E) [K], the runner's result)."""
        if sampler == "ensemble":
            from .ensemble import run_ensemble

            res = run_ensemble(model, betas, key=key, n_chains=n_chains, n_steps=steps, n_warmup=warmup,
                               kernel=kernel, progress=progress, **options)
            tot = obs.split_moments_total(res.energy)
            per_chain = np.where(np.asarray(res.nonfinite), np.nan, np.asarray(tot.mean, np.float64))
            return per_chain, np.asarray(res.energy_variance().mean, np.float64), res
        from .tempering import run_tempering

        res = run_tempering(model, betas, key=key, n_chains=n_chains, n_steps=steps, n_warmup=warmup,
                            kernel=kernel, adapt_ladder=False, progress=progress, **options)
        per_chain = np.where(np.asarray(res.nonfinite), np.nan,
                             np.asarray(obs.split_moments_total(res.energy).mean, np.float64))
        return per_chain, np.asarray(res.energy_variance().mean, np.float64), res

    if isinstance(grid, str):
        check_choice("grid", grid, ("auto", "quadratic", "linear"))
        if grid == "auto":
            pilot = ti_grid(beta, n_betas, "quadratic")
            _, var, _ = run(pilot, jax.random.fold_in(key, 7), max(n_steps // 4, 20), None, None)
            betas = ti_grid(beta, n_betas, "thermodynamic", energy_variance=var, pilot_betas=pilot)
        else:
            betas = ti_grid(beta, n_betas, grid)
    else:
        betas = check_betas(grid, "grid", increasing=True, start_at_zero=True)
        if betas.shape[0] < 3 or not math.isclose(betas[-1], beta, rel_tol=1e-12, abs_tol=0.0):
            raise ValueError(f"grid must have at least 3 points and end at beta={beta}, got {betas.shape[0]} points "
                             f"ending at {betas[-1]!r}")
    per_chain, _, res = run(betas, jax.random.fold_in(key, 11), n_steps, n_warmup, progress)
    ok = np.isfinite(per_chain)
    n_used = ok.sum(axis=1)
    if np.any(n_used < 2):
        raise ValueError(f"fewer than 2 finite chains at beta={betas[int(np.argmin(n_used))]!r}; "
                         "cannot estimate the error")
    mean = np.nanmean(per_chain, axis=1)
    se = np.nanstd(per_chain, axis=1, ddof=1) / np.sqrt(n_used)
    curve = ti_integrate(betas, mean, se, log_z0=log_z0)
    diag: dict[str, Any] = {"grid": betas, "sampler": sampler, "n_excluded_chains": int((~ok).sum())}
    if sampler == "ensemble":
        # chains at different β are independent: the propagated error of ti_integrate
        mc = float(curve.mc_stderr[-1])
        diag.update(acceptance=res.acceptance_rate().mean, step_size=res.step_size, rhat=res.rhat("energy"))
    else:
        # the β points share PT systems: spread of the per-system integrals (systems with a NaN excluded)
        good = ok.all(axis=0)
        if good.sum() < 2:
            raise ValueError(f"fewer than 2 finite PT systems ({int((~good).sum())} excluded); cannot estimate "
                             "the error")
        integrals = cumulative_weights(betas, "cubic")[-1] @ per_chain[:, good]
        mc = float(np.std(integrals, ddof=1) / math.sqrt(good.sum()))
        diag.update(swap_rate=res.swap_rate, round_trip_rate=res.round_trip_rate, step_size=res.step_size,
                    acceptance=res.acceptance_rate().mean, rhat=res.rhat("energy"),
                    round_trips=int(np.sum(res.round_trips)))
    quad = float(curve.quadrature_error[-1])
    stderr = float(math.hypot(mc, quad))
    reasons = ti_reasons(res, betas, per_chain, sampler)
    reasons += rel.quadrature_reason(quad, mc)
    if not math.isfinite(stderr):
        reasons.append("non-finite error bar")
    if ok.size and (~ok).any():
        reasons.append(f"{int((~ok).sum())} chain-points had non-finite energies (excluded)")
    reliable = not reasons
    diag.update(mean_energy=mean, mean_energy_stderr=se, mc_stderr=mc, quadrature_error=quad,
                quadrature_dominated=bool(quad > mc), reliable=reliable, reasons=list(reasons),
                unreliable=not reliable)
    if not reliable:
        rel.warn_unreliable(f"TI at beta={beta:g}", reasons)
    return LogZEstimate(float(curve.log_z[-1]), stderr, "ti", beta, diag, reliable=reliable,
                        reasons=tuple(reasons))


def ti_reasons(res: Any, betas: np.ndarray, per_chain: np.ndarray, sampler: str) -> list[str]:
    """The equilibrium rules of ``engine.reliability`` on the runner result of a TI grid: R-hat of E at every β,
    frozen chains (independent chains only: PT slots are fed by swaps) and, for PT, round trips and swap rates."""
    tot = obs.split_moments_total(res.energy)
    count = np.broadcast_to(np.asarray(tot.count, np.float64), per_chain.shape)
    var = np.where(np.isfinite(per_chain), np.asarray(tot.m2, np.float64) / np.maximum(count - 1, 1), np.nan)
    n_used = np.isfinite(per_chain).sum(axis=1)
    acc = np.asarray(res.acceptance_rate().mean, np.float64)
    what = "chains" if sampler == "ensemble" else "PT systems"
    reasons, _ = rel.equilibrium_reasons(betas, res.rhat("energy"), acc, per_chain, var, n_used, what=what,
                                         check_frozen=sampler == "ensemble")
    if sampler == "pt":
        reasons += rel.round_trip_reasons(res.round_trips, res.swap_rate, betas, res.n_steps)
    return reasons
