"""Annealed importance sampling transitions: importance weights along a β schedule for any inner kernel.

Reference: R. M. Neal, "Annealed importance sampling", Statistics and Computing 11, 125 (2001); C. Jarzynski,
Phys. Rev. Lett. 78, 2690 (1997) (the same identity as nonequilibrium work).

Along a schedule β_0 < β_1 < ... < β_K with intermediate targets p_k(x) ∝ prior(x) exp(−β_k E(x)), a chain
started from an exact draw of p_0 accumulates

    log w = Σ_k −(β_{k+1} − β_k) E(x_k),     x_{k+1} ~ T_{β_{k+1}}(x_k, ·)

where T_β leaves p_β invariant. E[w] = Z(β_K)/Z(β_0), so log mean_c exp(log w_c) over independent chains
estimates log Z(β_K) − log Z(β_0) (with ``logsumexp``; the engine's estimators give the error bar).
``step`` does one k: add the increment at the *current* state (which is distributed by the previous target),
then move it with one transition at β_{k+1}. Nothing here is specific to discrete or continuous models: the inner
state only needs an ``energy`` field (every thermodl kernel state has one).

The weight is accumulated with Kahan compensated summation, so in float32 it does not drift with the number of
steps (a plain float32 sum over K steps errs by up to ~K·eps·|log w|).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["AISState", "AISInfo", "init", "step"]


class AISState(NamedTuple):
    """State of one annealed chain.

    Fields:
        inner: the inner kernel's state (any pytree with a scalar ``energy`` field, E without β).
        log_weight: float [] — log importance weight accumulated so far (0 at the start).
        log_weight_compensation: float [] — Kahan compensation term of the running sum (the low-order bits lost
            so far); 0 at the start, not part of the estimate.
    """

    inner: Any
    log_weight: jax.Array
    log_weight_compensation: jax.Array = 0.0


class AISInfo(NamedTuple):
    """Diagnostics of one annealing step.

    Fields:
        log_weight_increment: float [] — −(β_next − β_prev)·E(x) added this step (−inf: weight became 0).
        inner_info: the inner transition's Info.
        acceptance_probability: float [] — the inner Info's (1.0 if it has none).
        is_accepted: bool [] — the inner Info's (True if it has none).
        is_divergent: bool [] — NaN increment or divergent inner transition.
    """

    log_weight_increment: jax.Array
    inner_info: Any
    acceptance_probability: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array


def _inner_energy(inner_state: Any, name: str) -> jax.Array:
    energy = getattr(inner_state, "energy", None)
    if energy is None:
        raise ValueError(f"{name}: the inner state must have an `energy` field, got {type(inner_state).__name__}")
    energy = jnp.asarray(energy)
    if energy.ndim != 0:
        raise ValueError(f"{name}: inner state energy must be a scalar (one chain), got shape {energy.shape}")
    return energy


def init(inner_state: Any) -> AISState:
    """Wrap an inner kernel state (an exact draw of the β_0 ensemble) with a zero log weight.

    Args:
        inner_state: inner kernel state of one chain, with a scalar ``energy``.

    Returns:
        ``AISState`` with ``log_weight = 0`` in the energy's float dtype.
    """
    energy = _inner_energy(inner_state, "ais.init")
    zero = jnp.zeros((), jnp.result_type(energy.dtype, jnp.float32))
    return AISState(inner_state, zero, zero)


def step(
    key: jax.Array,
    state: AISState,
    beta_prev: jax.Array,
    beta_next: jax.Array,
    transition: Callable,
) -> tuple[AISState, AISInfo]:
    """One annealing step β_prev -> β_next: weight update at the current state, then one transition at β_next.

    Args:
        key: PRNG key, consumed by the transition.
        state: ``AISState`` of one chain.
        beta_prev: float [] — the β the current inner state is (approximately) distributed at (traced).
        beta_next: float [] — the next β of the schedule (traced).
        transition: ``(key, inner_state, beta) -> (inner_state, inner_info)``, an inner kernel ``step`` closed
            over its other arguments (energy function, ΔE function, step size, ...); must leave the β ensemble
            invariant.

    Returns:
        ``(AISState, AISInfo)``. Convention 0·∞ = 0: a zero β increment adds 0 even where E = ±inf.
    """
    energy = _inner_energy(state.inner, "ais.step")
    log_weight = jnp.asarray(state.log_weight)
    dbeta = jnp.asarray(beta_next) - jnp.asarray(beta_prev)
    increment = jnp.where((dbeta == 0) & ~jnp.isnan(energy), 0.0, -dbeta * energy).astype(log_weight.dtype)

    # Kahan summation; a non-finite sum (weight 0, or a divergence) resets the compensation instead of NaN-ing it.
    compensation = jnp.asarray(state.log_weight_compensation, log_weight.dtype)
    corrected = increment - compensation
    total = log_weight + corrected
    compensation = jnp.where(jnp.isfinite(total), (total - log_weight) - corrected, 0.0).astype(log_weight.dtype)

    inner, inner_info = transition(key, state.inner, beta_next)
    dtype_p = jnp.result_type(log_weight.dtype, jnp.float32)
    acceptance = jnp.asarray(getattr(inner_info, "acceptance_probability", 1.0), dtype_p)
    is_accepted = jnp.asarray(getattr(inner_info, "is_accepted", True), bool)
    inner_divergent = jnp.asarray(getattr(inner_info, "is_divergent", False), bool)
    info = AISInfo(
        log_weight_increment=increment,
        inner_info=inner_info,
        acceptance_probability=acceptance,
        is_accepted=is_accepted,
        is_divergent=jnp.isnan(increment) | inner_divergent,
    )
    return AISState(inner, total, compensation), info
