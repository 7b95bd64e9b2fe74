"""Unadjusted Langevin algorithm (ULA): Euler–Maruyama steps of overdamped Langevin dynamics, no accept/reject.

References: G. Parisi, "Correlation functions and computer simulations", Nucl. Phys. B 180, 378 (1981);
G. O. Roberts, R. L. Tweedie, Bernoulli 2, 341 (1996) (the ULA and its bias).

With g(x) = ∇ log p_β(x) = −β ∇E(x) + ∇ log prior(x) and time step h = ``step_size`` (the convention of ``mala``
and ``sgld``):

    x' = x + (h/2) g(x) + √h ξ,   ξ ~ N(0, I).

The chain's stationary distribution differs from p_β by O(h): for a Gaussian target of precision λ the stationary
variance is 1 / (λ (1 − hλ/4)), i.e. the sampled temperature is too high by a factor 1 + hλ/4 + O(h²).
Every finite move is taken (``acceptance_probability`` 1); a move to a non-finite energy/gradient, or outside the
prior's support, is not taken and is flagged divergent (``acceptance_probability`` 0 for that step).
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
    _langevin_move,  # re-exported for sgld
    _select,
    gradient_state,
)
from .settings import KernelSettings

__all__ = ["State", "Info", "init", "step", "SETTINGS"]

# Unadjusted: no acceptance to aim at, the step size is the user's bias/variance trade-off.
SETTINGS = KernelSettings(
    kind="continuous",
    default_step_size=1e-3,
    target_acceptance=None,
    needs_gradient=True,
    manifold="euclidean",
    model_args=(("log_prior_fn", "log_prior"),),
    reference="Parisi 1981; Roberts & Tweedie 1996",
)

State = GradientState


class Info(NamedTuple):
    """Diagnostics of one step.

    Fields:
        acceptance_probability: float [] — 1 (unadjusted), 0 when the move was divergent.
        is_accepted: bool [] — the move was taken (every finite move).
        is_divergent: bool [] — the move led to a non-finite energy or gradient and was not taken.
    """

    acceptance_probability: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array


def init(position: jax.Array, energy_fn: Callable, log_prior_fn: Callable | None = None) -> GradientState:
    """Start a chain at ``position``.

    Args:
        position: float [dim].
        energy_fn: ``x [dim] -> []`` energy E (without β), differentiable.
        log_prior_fn: ``x [dim] -> []`` log prior, or ``None`` for a flat prior.

    Returns:
        ``GradientState`` (energy, log prior and their gradients at ``position``).
    """
    return gradient_state(_check_position(position, "langevin.init"), energy_fn, log_prior_fn)


def _unadjusted_transition(new: GradientState, state: GradientState):
    """Take every finite move; keep the old state for a divergent one (including a move outside the prior's
    support: with no accept/reject there is no other way to stay out of it)."""
    divergent = _invalid_gradient(new) | (new.log_prior == -jnp.inf)
    dtype = jnp.result_type(state.position.dtype, jnp.float32)
    info = Info(jnp.where(divergent, 0.0, 1.0).astype(dtype), ~divergent, divergent)
    return _select(~divergent, new, state), info


def step(
    key: jax.Array,
    state: GradientState,
    energy_fn: Callable,
    beta: jax.Array,
    log_prior_fn: Callable | None,
    step_size: jax.Array,
) -> tuple[GradientState, Info]:
    """One ULA step.

    Args:
        key: PRNG key, consumed.
        state: ``GradientState`` of one chain.
        energy_fn: ``x [dim] -> []`` energy E (without β), differentiable.
        beta: float [] inverse temperature (traced).
        log_prior_fn: ``x [dim] -> []`` log prior, or ``None`` for a flat prior.
        step_size: float [] (traced) time step h; the noise has standard deviation √h.

    Returns:
        ``(GradientState, Info)``; the position keeps its dtype.
    """
    x = _check_step(state.position, step_size, "langevin.step")
    proposal = _langevin_move(key, state, _as(beta, x.dtype), _as(step_size, x.dtype))
    return _unadjusted_transition(gradient_state(proposal, energy_fn, log_prior_fn), state)
