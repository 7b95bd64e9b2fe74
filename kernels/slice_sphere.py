"""Geodesic (great-circle) slice sampling on the sphere |x|² = dim, for energies that need no gradient.

References: M. Habeck, M. Hasenpflug, S. Kodgirwar, D. Rudolf, "Geodesic slice sampling on the sphere",
arXiv:2301.08056 (2023) (the shrinkage variant); its Euclidean-Gaussian analogue, elliptical slice sampling:
I. Murray, R. P. Adams, D. J. C. MacKay, "Elliptical slice sampling", AISTATS (2010); R. M. Neal, "Slice
sampling", Ann. Stat. 31, 705 (2003).

Target: the uniform measure on the sphere of radius R = √dim times exp(ℓ(x)), ℓ(x) = −β E(x) + log prior(x)
(``log_prior_fn`` w.r.t. the uniform measure; ``None``: uniform). One step:

1. level: log y = ℓ(x) − e, e ~ Exp(1) (i.e. y = u·exp(ℓ(x)), u ~ U(0, 1));
2. a uniform unit tangent direction v ⟂ x (a Gaussian projected on the tangent space, normalised); the great
   circle through x along v is x(θ) = x cos θ + R v sin θ;
3. θ ~ U(0, 2π) and the bracket [θ − 2π, θ]; while ℓ(x(θ)) ≤ log y shrink the bracket towards 0 (the current
   point: θ < 0 -> lower end = θ, else upper end = θ) and draw θ uniformly in it again.

The shrinkage procedure is reversible w.r.t. the uniform measure on the slice ∩ great circle, and the great circle
is drawn from a distribution symmetric in its two points, so the step leaves the target invariant for *any*
energy: piecewise-constant error counts (the spherical perceptron) included, where it needs no step size and moves
across the whole slice in one step instead of a random walk's small rotations. The loop (``lax.while_loop``;
under ``vmap`` it runs until the slowest chain is done) stops after ``max_shrinkage_steps`` energy evaluations: a
step that hits the cap, meets a non-finite energy / NaN log prior / non-finite position, or starts from a
non-finite ℓ(x), stays put and is flagged divergent (for a finite energy the bracket shrinks geometrically onto
the current point, which lies in the slice, so the cap is reached only in degenerate cases). Every accepted point
is renormalised to |x|² = dim. Convention 0·∞ = 0 at β = 0.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from .integrators import _as, _beta_times, _check_position, _invalid_value, _select
from .rwm import State, _evaluate
from .settings import KernelSettings, Option, positive_int
from .sphere import project

__all__ = ["State", "Info", "init", "step", "SETTINGS"]

SETTINGS = KernelSettings(
    kind="continuous",
    default_step_size=None,  # nothing to tune: the bracket adapts itself within each step
    target_acceptance=None,
    needs_gradient=False,
    manifold="sphere",
    model_args=(("log_prior_fn", "log_prior"),),
    options=(
        Option("max_shrinkage_steps", 100, True, "cap on energy evaluations per step (then stay put, divergent)",
               positive_int),
    ),
    reference="Habeck, Hasenpflug, Kodgirwar & Rudolf 2023 (arXiv:2301.08056); Murray, Adams & MacKay 2010",
)


class Info(NamedTuple):
    """Diagnostics of one step.

    Fields:
        acceptance_probability: float [] — 1 when a point on the slice was found (every slice step "accepts"), 0
            for a divergent step.
        is_accepted: bool [] — the chain moved to a new point of the slice.
        is_divergent: bool [] — no point was found: the shrinkage cap was hit, or a non-finite energy / NaN log
            prior / non-finite position was met, or the current ℓ(x) is not finite; the chain stayed put.
        num_energy_evaluations: int32 [] — energy evaluations (shrinkage steps + 1) the step used.
    """

    acceptance_probability: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array
    num_energy_evaluations: jax.Array


def init(position: jax.Array, energy_fn: Callable, log_prior_fn: Callable | None = None) -> State:
    """Start a chain at ``position`` projected onto the sphere |x|² = dim.

    Args:
        position: float [dim], nonzero (dim ≥ 2).
        energy_fn: ``x [dim] -> []`` energy E (without β); need not be differentiable.
        log_prior_fn: ``x [dim] -> []`` log prior w.r.t. the uniform measure on the sphere, or ``None`` (uniform).

    Returns:
        ``rwm.State`` at the projected position.
    """
    x = _check_position(position, "slice_sphere.init")
    if x.shape[0] < 2:
        raise ValueError(f"slice_sphere.init: the sphere needs dim >= 2, got dim = {x.shape[0]}")
    return _evaluate(project(x), energy_fn, log_prior_fn)


def _log_density(state: State, beta: jax.Array) -> jax.Array:
    return -_beta_times(beta, state.energy) + state.log_prior


def step(
    key: jax.Array,
    state: State,
    energy_fn: Callable,
    beta: jax.Array,
    log_prior_fn: Callable | None = None,
    max_shrinkage_steps: int = 100,
) -> tuple[State, Info]:
    """One geodesic slice-sampling step on |x|² = dim.

    Args:
        key: PRNG key, consumed (level, direction, and one angle per shrinkage step).
        state: ``rwm.State`` of one chain (position on the sphere).
        energy_fn: ``x [dim] -> []`` energy E (without β); need not be differentiable.
        beta: float [] inverse temperature (traced).
        log_prior_fn: ``x [dim] -> []`` log prior on the sphere, or ``None`` (uniform).
        max_shrinkage_steps: static Python int ≥ 1, the most energy evaluations of one step.

    Returns:
        ``(rwm.State, Info)``; the position keeps its dtype and |x|² = dim to rounding.
    """
    x = _check_position(state.position, "slice_sphere.step")
    if isinstance(max_shrinkage_steps, bool) or not isinstance(max_shrinkage_steps, int) or max_shrinkage_steps < 1:
        raise ValueError(f"slice_sphere.step: max_shrinkage_steps must be a positive Python int, got "
                         f"{max_shrinkage_steps!r}")
    dtype = x.dtype
    dim = x.shape[0]
    beta = _as(beta, dtype)
    radius = jnp.sqrt(jnp.asarray(dim, dtype))
    two_pi = jnp.asarray(2.0 * math.pi, dtype)
    key_level, key_direction, key_angles = jax.random.split(key, 3)

    log_level = _log_density(state, beta) - jax.random.exponential(key_level, (), dtype)
    x_hat = x / radius
    xi = jax.random.normal(key_direction, x.shape, dtype)
    xi_perp = xi - jnp.dot(xi, x_hat) * x_hat
    norm = jnp.linalg.norm(xi_perp)
    direction = xi_perp / jnp.where(norm > 0, norm, 1.0)

    def on_circle(theta):
        return project(jnp.cos(theta) * x + radius * jnp.sin(theta) * direction)

    def cond(carry):
        n, _, _, _, _, done, _ = carry
        return ~done & (n < max_shrinkage_steps)

    def body(carry):
        n, lower, upper, theta, _, _, _ = carry
        point = on_circle(theta)
        new = jax.tree.map(lambda a, b: a.astype(b.dtype), _evaluate(point, energy_fn, log_prior_fn), state)
        invalid = _invalid_value(new.energy, new.log_prior) | ~jnp.all(jnp.isfinite(point))
        inside = ~invalid & (_log_density(new, beta) > log_level)
        lower = jnp.where(theta < 0, theta, lower)
        upper = jnp.where(theta < 0, upper, theta)
        u = jax.random.uniform(jax.random.fold_in(key_angles, n + 1), (), dtype)
        next_theta = lower + u * (upper - lower)
        return n + 1, lower, upper, next_theta, new, inside | invalid, inside

    theta0 = two_pi * jax.random.uniform(jax.random.fold_in(key_angles, 0), (), dtype)
    start_ok = jnp.isfinite(log_level) & (norm > 0)
    carry = (jnp.int32(0), theta0 - two_pi, theta0, theta0, state, ~start_ok, jnp.zeros((), bool))
    n, _, _, _, new, _, found = jax.lax.while_loop(cond, body, carry)
    p_dtype = jnp.result_type(dtype, jnp.float32)
    info = Info(
        acceptance_probability=jnp.where(found, 1.0, 0.0).astype(p_dtype),
        is_accepted=found,
        is_divergent=~found,
        num_energy_evaluations=n,
    )
    return _select(found, new, state), info
