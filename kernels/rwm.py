"""Gaussian random-walk Metropolis (RWM) in R^dim.

Reference: N. Metropolis, A. Rosenbluth, M. Rosenbluth, A. Teller, E. Teller, J. Chem. Phys. 21, 1087 (1953);
step-size scaling: G. O. Roberts, A. Gelman, W. R. Gilks, "Weak convergence and optimal scaling of random walk
Metropolis algorithms", Ann. Appl. Probab. 7, 110 (1997) (acceptance ≈ 0.234 in high dimension).

Proposal x' = x + step_size · ξ, ξ ~ N(0, I); symmetric, so the log ratio is −β ΔE + Δ log prior. Needs no
gradient: the kernel for non-differentiable energies (error counts) in R^dim. See ``thermodl.kernels.integrators``
for the conventions on non-finite proposals (rejected, flagged divergent) and 0·∞ = 0 at β = 0.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from .integrators import (
    _as,
    _check_position,
    _check_step,
    _invalid_value,
    _log_prior_fn,
    _neg_beta_delta,
    _select,
    _strong,
)
from .metropolis import metropolis_accept
from .settings import KernelSettings

__all__ = ["State", "Info", "init", "step", "SETTINGS"]

SETTINGS = KernelSettings(
    kind="continuous",
    default_step_size=0.1,
    target_acceptance=0.3,
    needs_gradient=False,
    manifold="euclidean",
    model_args=(("log_prior_fn", "log_prior"),),
    reference="Metropolis et al. 1953; Roberts, Gelman & Gilks 1997",
)


class State(NamedTuple):
    """State of one chain of a gradient-free kernel (``rwm``, ``sphere``).

    Fields:
        position: float [dim] — the current point x.
        energy: float [] — E(x), without β.
        log_prior: float [] — log prior(x).
    """

    position: jax.Array
    energy: jax.Array
    log_prior: jax.Array


class Info(NamedTuple):
    """Diagnostics of one step.

    Fields:
        acceptance_probability: float [] — min(1, exp(log ratio)); 0 for a divergent proposal.
        is_accepted: bool [] — the proposal was taken.
        is_divergent: bool [] — the proposal had a non-finite energy / NaN log prior / NaN log ratio (rejected).
    """

    acceptance_probability: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array


def _evaluate(x: jax.Array, energy_fn: Callable, log_prior_fn: Callable | None) -> State:
    return State(x, _strong(energy_fn(x)), _strong(_log_prior_fn(log_prior_fn)(x)))


def init(position: jax.Array, energy_fn: Callable, log_prior_fn: Callable | None = None) -> State:
    """Start a chain at ``position``.

    Args:
        position: float [dim].
        energy_fn: ``x [dim] -> []`` energy E (without β).
        log_prior_fn: ``x [dim] -> []`` log prior, or ``None`` for a flat prior.

    Returns:
        ``State`` with energy and log prior evaluated once.
    """
    return _evaluate(_check_position(position, "rwm.init"), energy_fn, log_prior_fn)


def _symmetric_transition(key, state: State, proposal: jax.Array, energy_fn, beta, log_prior_fn):
    """Accept/reject a *symmetric* proposal for a ``State`` (shared by ``rwm`` and ``sphere``).

    Args:
        key: PRNG key, consumed by ``metropolis_accept``.
        state: current ``State``.
        proposal: float [dim] proposed position.
        energy_fn, beta, log_prior_fn: the target −β E + log prior.

    Returns:
        ``(State, Info)``.
    """
    beta = _as(beta, state.position.dtype)
    new = _evaluate(proposal.astype(state.position.dtype), energy_fn, log_prior_fn)
    log_ratio = _neg_beta_delta(beta, new.energy - state.energy) + (new.log_prior - state.log_prior)
    # A non-finite proposed position is divergent even when the energy hides it (e.g. an error count of NaNs is 0).
    bad_position = ~jnp.all(jnp.isfinite(proposal))
    log_ratio = jnp.where(_invalid_value(new.energy, new.log_prior) | bad_position, jnp.nan, log_ratio)
    acc = metropolis_accept(key, log_ratio)
    info = Info(acc.acceptance_probability, acc.is_accepted, acc.is_divergent)
    return _select(acc.is_accepted, new, state), info


def _symmetric_step(key, state: State, energy_fn, beta, log_prior_fn, step_size, propose: Callable, name: str):
    """Check the arguments, split ``key``, propose ``propose(key_proposal, x, step_size)`` and accept/reject it with
    ``_symmetric_transition`` (the step of ``rwm`` and ``sphere``, which differ only in ``propose``).

    Returns:
        ``(State, Info)``.
    """
    x = _check_step(state.position, step_size, name)
    key_proposal, key_accept = jax.random.split(key)
    proposal = propose(key_proposal, x, _as(step_size, x.dtype))
    return _symmetric_transition(key_accept, state, proposal, energy_fn, beta, log_prior_fn)


def _gaussian_proposal(key, x: jax.Array, step_size: jax.Array) -> jax.Array:
    """x + step_size · ξ, ξ ~ N(0, I)."""
    return x + step_size * jax.random.normal(key, x.shape, x.dtype)


def step(
    key: jax.Array,
    state: State,
    energy_fn: Callable,
    beta: jax.Array,
    log_prior_fn: Callable | None,
    step_size: jax.Array,
) -> tuple[State, Info]:
    """One random-walk Metropolis step.

    Args:
        key: PRNG key, consumed.
        state: ``State`` of one chain.
        energy_fn: ``x [dim] -> []`` energy E (without β).
        beta: float [] inverse temperature (traced).
        log_prior_fn: ``x [dim] -> []`` log prior, or ``None`` for a flat prior.
        step_size: float [] (traced) standard deviation of the Gaussian proposal per coordinate.

    Returns:
        ``(State, Info)``; the position keeps its dtype.
    """
    return _symmetric_step(key, state, energy_fn, beta, log_prior_fn, step_size, _gaussian_proposal, "rwm.step")
