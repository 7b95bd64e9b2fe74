"""Metropolis-adjusted Langevin algorithm (MALA).

Reference: G. O. Roberts, R. L. Tweedie, "Exponential convergence of Langevin distributions and their discrete
approximations", Bernoulli 2, 341 (1996); optimal scaling (acceptance ≈ 0.574): G. O. Roberts, J. S. Rosenthal,
J. R. Stat. Soc. B 60, 255 (1998).

With g(x) = ∇ log p_β(x) = −β ∇E(x) + ∇ log prior(x) and the Langevin *time step* h = ``step_size`` (the same
convention as ``langevin`` and ``sgld``, i.e. Welling & Teh's ε), the proposal is the Euler–Maruyama step of
dX = ½ ∇ log p_β dt + dW:

    x' = x + (h/2) g(x) + √h ξ,   ξ ~ N(0, I),    log q(x'|x) = −|x' − x − (h/2) g(x)|² / (2h),

accepted with log ratio −β ΔE + Δ log prior + log q(x|x') − log q(x'|x). One energy gradient per step (cached in
the state). Non-finite proposals are rejected and flagged divergent (see ``thermodl.kernels.integrators``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from .integrators import (
    GradientState,
    _as,
    _check_position,
    _check_step,
    _invalid_gradient,
    _langevin_move,
    _neg_beta_delta,
    _select,
    gradient_state,
    potential_gradient,
)
from .metropolis import metropolis_accept
from .settings import KernelSettings

__all__ = ["State", "Info", "init", "step", "SETTINGS"]

SETTINGS = KernelSettings(
    kind="continuous",
    default_step_size=0.05,
    target_acceptance=0.57,
    needs_gradient=True,
    manifold="euclidean",
    model_args=(("log_prior_fn", "log_prior"),),
    reference="Roberts & Tweedie 1996; Roberts & Rosenthal 1998",
)

State = GradientState


class Info(NamedTuple):
    """Diagnostics of one step.

    Fields:
        acceptance_probability: float [] — min(1, exp(log ratio)); 0 for a divergent proposal.
        is_accepted: bool [] — the proposal was taken.
        is_divergent: bool [] — the proposal had a non-finite energy or gradient, or a NaN log ratio (rejected).
        energy_error: float [] — −(log ratio), the analogue of HMC's ΔH (NaN for a divergent proposal).
    """

    acceptance_probability: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array
    energy_error: jax.Array


def init(position: jax.Array, energy_fn: Callable, log_prior_fn: Callable | None = None) -> GradientState:
    """Start a chain at ``position``.

    Args:
        position: float [dim].
        energy_fn: ``x [dim] -> []`` energy E (without β), differentiable.
        log_prior_fn: ``x [dim] -> []`` log prior, or ``None`` for a flat prior.

    Returns:
        ``GradientState`` (energy, log prior and their gradients at ``position``).
    """
    return gradient_state(_check_position(position, "mala.init"), energy_fn, log_prior_fn)


def _log_proposal(to: jax.Array, frm: GradientState, beta: jax.Array, h: jax.Array) -> jax.Array:
    """log q(to | frm) up to the constant common to both directions."""
    mean = frm.position - 0.5 * h * potential_gradient(frm, beta)
    return -jnp.sum((to - mean) ** 2) / (2.0 * h)


def step(
    key: jax.Array,
    state: GradientState,
    energy_fn: Callable,
    beta: jax.Array,
    log_prior_fn: Callable | None,
    step_size: jax.Array,
) -> tuple[GradientState, Info]:
    """One MALA step.

    Args:
        key: PRNG key, consumed.
        state: ``GradientState`` of one chain.
        energy_fn: ``x [dim] -> []`` energy E (without β).
        beta: float [] inverse temperature (traced).
        log_prior_fn: ``x [dim] -> []`` log prior, or ``None`` for a flat prior.
        step_size: float [] (traced) Langevin time step h; the proposal noise has standard deviation √h.

    Returns:
        ``(GradientState, Info)``; the position keeps its dtype.
    """
    x = _check_step(state.position, step_size, "mala.step")
    beta = _as(beta, x.dtype)
    h = _as(step_size, x.dtype)
    key_proposal, key_accept = jax.random.split(key)
    new = gradient_state(_langevin_move(key_proposal, state, beta, h), energy_fn, log_prior_fn)

    log_ratio = (
        _neg_beta_delta(beta, new.energy - state.energy)
        + (new.log_prior - state.log_prior)
        + _log_proposal(state.position, new, beta, h)
        - _log_proposal(new.position, state, beta, h)
    )
    # Outside the prior's support the reverse proposal density may be NaN (NaN gradient): reject plainly.
    log_ratio = jnp.where(new.log_prior == -jnp.inf, -jnp.inf, log_ratio)
    log_ratio = jnp.where(_invalid_gradient(new), jnp.nan, log_ratio)
    acc = metropolis_accept(key_accept, log_ratio)
    info = Info(acc.acceptance_probability, acc.is_accepted, acc.is_divergent, -log_ratio)
    return _select(acc.is_accepted, new, state), info
