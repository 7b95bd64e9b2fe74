"""Stochastic-gradient Langevin dynamics (SGLD): ULA with minibatch gradients of the energy.

Reference: M. Welling, Y. W. Teh, "Bayesian learning via stochastic gradient Langevin dynamics", ICML (2011).

The energy is a sum over P = ``n_data`` data points, E(x) = Σ_μ loss_μ(x); ``minibatch_energy_fn(x, idx)`` returns
the unbiased estimate Ê(x) = (P/B) Σ_{μ∈idx} loss_μ(x) for B = ``batch_size`` indices drawn *without replacement*.
With time step h = ``step_size`` (Welling & Teh's ε; the convention of ``langevin`` and ``mala``):

    x' = x + (h/2) (−β ∇Ê(x) + ∇ log prior(x)) + √h ξ,   ξ ~ N(0, I).

No accept/reject. Besides the O(h) discretisation bias of ULA, the minibatch noise heats the chain further: for a
quadratic energy its gradient noise adds (hβ/2)² Var(∇Ê) to the injected variance h per step, a relative excess
of O(h β² Var(∇Ê)) that vanishes as h → 0.

Cached state (one ``value_and_grad`` per step): ``State.energy`` and ``State.energy_grad`` are the minibatch
estimate Ê and its gradient *at the current position*, on the minibatch drawn at the end of the step that produced
that position (on the full data set after ``init``). That gradient drives the next move; the minibatch is drawn
independently of the position, so each move uses a fresh unbiased gradient as SGLD requires. ``State.energy`` is
therefore a noisy (unbiased) estimate of E(x), not E(x) itself.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from .integrators import (
    GradientState,
    _as,
    _check_position,
    _check_positive,
    _check_scalar,
    gradient_state,
)
from .langevin import Info, _langevin_move, _unadjusted_transition
from .settings import KernelSettings, Option, optional_positive_int

__all__ = ["State", "Info", "init", "step", "SETTINGS"]

# Unadjusted: no acceptance to aim at. n_data is the model's static data-set size.
SETTINGS = KernelSettings(
    kind="continuous",
    default_step_size=1e-4,
    target_acceptance=None,
    needs_gradient=True,
    manifold="euclidean",
    energy="energy_minibatch",
    model_args=(("log_prior_fn", "log_prior"), ("n_data", "n_data")),
    options=(
        Option("batch_size", None, True, "minibatch size B in [1, n_data] (default min(32, n_data))",
               optional_positive_int),
    ),
    reference="Welling & Teh 2011",
)

State = GradientState


def _check_sizes(n_data, batch_size, name: str) -> None:
    if isinstance(n_data, bool) or not isinstance(n_data, int) or n_data < 1:
        raise ValueError(f"{name}: n_data must be a positive Python int, got {n_data!r}")
    if batch_size is None:
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n_data:
        raise ValueError(f"{name}: batch_size must be a Python int in [1, n_data={n_data}], got {batch_size!r}")


def _draw_minibatch(key: jax.Array, n_data: int, batch_size: int) -> jax.Array:
    """``batch_size`` distinct indices in [0, n_data), a uniformly random subset (order unspecified); int32 [B].

    Small batches use Floyd's algorithm (O(B²), no O(P) work: J. Bentley, R. Floyd, "A sample of brilliance",
    Commun. ACM 30, 754 (1987)); large ones the B largest of P uniforms (O(P)). Both give every B-subset
    probability 1 / C(P, B). B = P returns all indices.
    """
    if batch_size == n_data:
        return jnp.arange(n_data, dtype=jnp.int32)
    if batch_size * batch_size > 8 * n_data:
        return jax.lax.top_k(jax.random.uniform(key, (n_data,)), batch_size)[1].astype(jnp.int32)
    # Floyd: for j = P−B, ..., P−1 draw t uniform in [0, j]; insert t, or j if t was already taken.
    top = n_data - batch_size + jnp.arange(batch_size, dtype=jnp.int32)
    draws = jax.random.randint(key, (batch_size,), 0, top + 1, dtype=jnp.int32)

    def insert(i, chosen):
        return chosen.at[i].set(jnp.where(jnp.any(chosen == draws[i]), top[i], draws[i]))

    return jax.lax.fori_loop(0, batch_size, insert, jnp.full((batch_size,), -1, jnp.int32))


def init(
    position: jax.Array,
    minibatch_energy_fn: Callable,
    log_prior_fn: Callable | None = None,
    n_data: int | None = None,
) -> GradientState:
    """Start a chain at ``position``, with the full-data energy and gradient (all P indices once).

    Args:
        position: float [dim].
        minibatch_energy_fn: ``(x [dim], idx int [B]) -> []`` the estimate (P/B) Σ_{μ∈idx} loss_μ(x).
        log_prior_fn: ``x [dim] -> []`` log prior, or ``None`` for a flat prior.
        n_data: static Python int P, the number of data points (required: without it there is no minibatch to
            evaluate the initial energy on).

    Returns:
        ``GradientState`` whose energy is the exact E(position) (idx = 0..P−1 gives (P/P) Σ_μ loss_μ).
    """
    if n_data is None:
        raise ValueError("sgld.init: n_data must be given (the number of data points), got None")
    _check_sizes(n_data, None, "sgld.init")
    x = _check_position(position, "sgld.init")
    idx = jnp.arange(n_data)
    return gradient_state(x, lambda z: minibatch_energy_fn(z, idx), log_prior_fn)


def step(
    key: jax.Array,
    state: GradientState,
    minibatch_energy_fn: Callable,
    beta: jax.Array,
    log_prior_fn: Callable | None,
    step_size: jax.Array,
    n_data: int,
    batch_size: int | None = None,
) -> tuple[GradientState, Info]:
    """One SGLD step: move with the cached minibatch gradient, then estimate energy and gradient at the new point.

    Args:
        key: PRNG key, consumed (Langevin noise and the next minibatch).
        state: ``GradientState`` of one chain (energy / energy_grad are minibatch estimates, see module doc).
        minibatch_energy_fn: ``(x [dim], idx int [batch_size]) -> []`` unbiased full-data energy estimate.
        beta: float [] inverse temperature (traced).
        log_prior_fn: ``x [dim] -> []`` log prior (exact, not subsampled), or ``None`` for a flat prior.
        step_size: float [] (traced) time step h; the injected noise has standard deviation √h.
        n_data: static Python int P.
        batch_size: static Python int B in [1, P] (``None``: min(32, P)); indices are drawn uniformly without
            replacement.

    Returns:
        ``(GradientState, langevin.Info)``; a move to a non-finite estimate is not taken and flagged divergent.
    """
    x = _check_position(state.position, "sgld.step")
    if batch_size is None and not isinstance(n_data, bool) and isinstance(n_data, int):
        batch_size = min(32, n_data)
    _check_sizes(n_data, batch_size, "sgld.step")
    _check_scalar(step_size, "step_size", "sgld.step")
    _check_positive(step_size, "step_size", "sgld.step")
    key_noise, key_batch = jax.random.split(key)
    proposal = _langevin_move(key_noise, state, _as(beta, x.dtype), _as(step_size, x.dtype))
    idx = _draw_minibatch(key_batch, n_data, batch_size)
    new = gradient_state(proposal, lambda z: minibatch_energy_fn(z, idx), log_prior_fn)
    return _unadjusted_transition(new, state)
