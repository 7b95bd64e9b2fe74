"""Temperature ladders for parallel tempering: the starting ladder and its adaptation from swap rejection rates.

Reference: S. Syed, A. Bouchard-Côté, G. Deligiannidis, A. Doucet, "Non-reversible parallel tempering: a scalable
highly parallel MCMC scheme", J. R. Stat. Soc. B 84, 321 (2022) — communication barrier Λ and Algorithm 4.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["initial_ladder", "communication_barrier", "ladder_from_barrier"]


def initial_ladder(beta_min: float, beta_max: float, n_replicas: int) -> np.ndarray:
    """The starting ladder [R]: geometric between β_min > 0 and β_max, quadratic β_max·(k/(R−1))² if β_min = 0."""
    k = np.arange(n_replicas) / (n_replicas - 1)
    if beta_min > 0:
        return beta_min * (beta_max / beta_min) ** k
    return beta_max * k**2


def communication_barrier(betas: Any, rejection: Any) -> np.ndarray:
    """Cumulative communication barrier Λ at the ladder points: Λ_0 = 0, Λ_{k+1} = Λ_k + r_k (Syed et al. 2022).

    Args:
        betas: [R] ladder. rejection: [R−1] swap rejection rates r_k = 1 − (mean acceptance of pair (k, k+1)).
    Returns:
        [R] Λ(β_k); Λ(β_max) is the global barrier (expected round-trip rate of DEO ≈ 1 / (2 + 2Λ)).
    """
    r = np.asarray(rejection, np.float64)
    if r.shape != (np.asarray(betas).shape[0] - 1,):
        raise ValueError(f"rejection must have shape [R-1] = ({len(betas) - 1},), got {r.shape}")
    return np.concatenate([[0.0], np.cumsum(np.clip(np.nan_to_num(r, nan=1.0), 0.0, 1.0))])


def ladder_from_barrier(betas: Any, rejection: Any, floor: float = 1e-3) -> np.ndarray:
    """Re-place the ladder at equal spacing of the communication barrier Λ, endpoints fixed (Syed et al. Alg. 4).

    Λ is interpolated piecewise linearly between ladder points (constant barrier density per interval); the
    rejection rates are floored at ``floor`` so that Λ is strictly increasing and no region is left empty.

    Args:
        betas: [R] current increasing ladder. rejection: [R−1] estimated rejection rates per neighbouring pair.
        floor: minimum rejection rate per interval.
    Returns:
        [R] new increasing ladder with the same endpoints.
    """
    betas = np.asarray(betas, np.float64)
    r = np.maximum(np.clip(np.nan_to_num(np.asarray(rejection, np.float64), nan=1.0), 0.0, 1.0), floor)
    lam = communication_barrier(betas, r)
    targets = np.linspace(0.0, lam[-1], betas.shape[0])
    new = np.interp(targets, lam, betas)
    new[0], new[-1] = betas[0], betas[-1]
    return new
