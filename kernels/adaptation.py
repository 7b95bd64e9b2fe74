"""Dual-averaging step-size adaptation for many groups at once (one step size per temperature, say).

Reference: M. D. Hoffman, A. Gelman, "The No-U-Turn Sampler: adaptively setting path lengths in Hamiltonian Monte
Carlo", JMLR 15, 1593 (2014), §3.2 (after Y. Nesterov, "Primal-dual subgradient methods for convex problems",
Math. Program. 120, 221 (2009)).

Each group g (e.g. one β of a ladder, all its chains together) has its own iterate. With α_t the acceptance
probability of step t averaged over the group's chains and δ the target, iteration t = 1, 2, ... does

    H̄_t     = (1 − 1/(t + t₀)) H̄_{t−1} + (δ − α_t) / (t + t₀)
    log ε_t  = μ − (√t / γ) H̄_t,                       μ = log(10 ε₀)
    log ε̄_t = t^(−κ) log ε_t + (1 − t^(−κ)) log ε̄_{t−1}

with γ = 0.05, t₀ = 10, κ = 0.75 (the paper's values). Sample with ``step_size(state)`` = ε_t during warmup and
freeze ``final_step_size(state)`` = ε̄_t afterwards. Averaging over chains makes α_t much less noisy than one
chain's, so many chains adapt faster and more reliably than one.

All functions are pure and work on arrays of any shape [G...] (every field has the shape of the initial step
size), under ``jit`` and ``vmap``. A NaN acceptance (a group whose chains all diverged) counts as 0, which shrinks
the step size. log ε is clipped to ±¼ log(float max) so neither ε nor ε² overflows, even for a target that accepts
everything.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .integrators import _concrete

__all__ = ["AdaptationState", "init", "update", "step_size", "final_step_size"]


class AdaptationState(NamedTuple):
    """Dual-averaging state; every field has the shape [G...] of the step sizes.

    Fields:
        log_step_size: float [G...] — log ε_t, the step size to use now (during warmup).
        log_step_size_avg: float [G...] — log ε̄_t, the averaged iterate to freeze after warmup (log ε₀ at t = 0).
        error_avg: float [G...] — H̄_t, the running average of δ − α.
        mu: float [G...] — μ = log(10 ε₀), the point the iterates shrink towards.
        count: int32 [G...] — t, the number of updates so far.
    """

    log_step_size: jax.Array
    log_step_size_avg: jax.Array
    error_avg: jax.Array
    mu: jax.Array
    count: jax.Array


def init(initial_step_size: jax.Array) -> AdaptationState:
    """Start dual averaging from ε₀ = ``initial_step_size``.

    Args:
        initial_step_size: float [G...] (or a scalar), > 0.

    Returns:
        ``AdaptationState`` with fields of shape [G...] and the dtype of the step size (float32 for ints).
    """
    concrete = _concrete(initial_step_size)
    if concrete is not None and not np.all(concrete > 0):
        raise ValueError(f"adaptation.init: initial_step_size must be positive, got {initial_step_size!r}")
    eps0 = jnp.asarray(initial_step_size)
    if not jnp.issubdtype(eps0.dtype, jnp.floating):
        eps0 = eps0.astype(jnp.float32)
    eps0 = jnp.asarray(eps0, dtype=eps0.dtype)  # drop weak typing: fields are scan carries
    log_eps0 = jnp.log(eps0)
    zeros = jnp.zeros_like(eps0)
    return AdaptationState(log_eps0, log_eps0, zeros, jnp.log(10.0 * eps0), jnp.zeros(eps0.shape, jnp.int32))


def update(
    state: AdaptationState,
    mean_acceptance: jax.Array,
    target: jax.Array | float,
    *,
    gamma: float = 0.05,
    t0: float = 10.0,
    kappa: float = 0.75,
) -> AdaptationState:
    """One dual-averaging iteration per group.

    Args:
        state: ``AdaptationState`` [G...].
        mean_acceptance: float [G...] (or broadcastable to it) — acceptance probability averaged over each
            group's chains at the step size ``step_size(state)``; NaN counts as 0, values are clipped to [0, 1].
        target: float [] or [G...] target acceptance δ in (0, 1).
        gamma, t0, kappa: dual-averaging constants (Hoffman & Gelman's defaults).

    Returns:
        The updated ``AdaptationState`` (same shapes and dtypes).
    """
    shape = state.log_step_size.shape
    try:
        broadcast = np.broadcast_shapes(jnp.shape(mean_acceptance), shape)
    except ValueError:
        broadcast = None
    if broadcast != shape:
        raise ValueError(
            f"adaptation.update: mean_acceptance must have the groups' shape {shape}, got "
            f"{jnp.shape(mean_acceptance)}"
        )
    t_arr = _concrete(target)
    if t_arr is not None and not np.all((t_arr > 0) & (t_arr < 1)):
        raise ValueError(f"adaptation.update: target must lie in (0, 1), got {target!r}")
    dtype = state.log_step_size.dtype
    alpha = jnp.asarray(mean_acceptance, dtype)
    alpha = jnp.clip(jnp.where(jnp.isnan(alpha), 0.0, alpha), 0.0, 1.0)
    target = jnp.asarray(target, dtype)

    count = state.count + 1
    t = count.astype(dtype)
    eta = 1.0 / (t + t0)
    error_avg = (1.0 - eta) * state.error_avg + eta * (target - alpha)
    bound = 0.25 * jnp.log(jnp.finfo(dtype).max)
    log_eps = jnp.clip(state.mu - jnp.sqrt(t) / gamma * error_avg, -bound, bound)
    weight = t ** (-kappa)
    log_eps_avg = weight * log_eps + (1.0 - weight) * state.log_step_size_avg
    return AdaptationState(
        log_eps.astype(dtype),
        log_eps_avg.astype(dtype),
        error_avg.astype(dtype),
        state.mu,
        count,
    )


def step_size(state: AdaptationState) -> jax.Array:
    """The current step size ε_t [G...] (use during warmup)."""
    return jnp.exp(state.log_step_size)


def final_step_size(state: AdaptationState) -> jax.Array:
    """The averaged step size ε̄_t [G...] to freeze after warmup (ε₀ before any update)."""
    return jnp.exp(state.log_step_size_avg)
