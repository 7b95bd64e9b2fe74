"""Geodesic random-walk Metropolis on the sphere |x|² = dim (spherical weights).

References: the random walk on a Riemannian manifold by its exponential map, e.g. S. Byrne, M. Girolami,
"Geodesic Monte Carlo on embedded manifolds", Scand. J. Stat. 40, 825 (2013) (geodesic flow on the sphere);
E. Gardner, "The space of interactions in neural network models", J. Phys. A 21, 257 (1988) (spherical weights);
Metropolis et al., J. Chem. Phys. 21, 1087 (1953).

With radius R = √dim and x̂ = x / R, a tangent vector t = step_size · (ξ − (ξ·x̂) x̂), ξ ~ N(0, I_dim), is mapped
to the sphere along the great circle (exponential map): with θ = |t| / R and u = t / |t|,

    x' = cos θ · x + R sin θ · u.

θ ≈ step_size · √((dim − 1)/dim) ≈ ``step_size`` radians, and each coordinate moves by ≈ ``step_size`` (like
``rwm``). The proposal is equivariant under rotations and isotropic about x, so its density w.r.t. the uniform
measure depends only on the geodesic distance between x and x': it is symmetric, and the log ratio is
−β ΔE + Δ log prior. Needs no gradient (works for error-count energies). Every proposal is renormalised to
|x'|² = dim so float rounding never drifts off the sphere; ``init`` projects its position onto the sphere.
``log_prior_fn`` is w.r.t. the uniform measure on the sphere (``None``: the uniform prior).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from .integrators import _check_position
from .rwm import Info, State, _evaluate, _symmetric_step
from .settings import KernelSettings

__all__ = ["State", "Info", "init", "step", "project", "SETTINGS"]

SETTINGS = KernelSettings(
    kind="continuous",
    default_step_size=0.1,
    target_acceptance=0.3,
    needs_gradient=False,
    manifold="sphere",
    model_args=(("log_prior_fn", "log_prior"),),
    reference="Byrne & Girolami 2013; Gardner 1988; Metropolis et al. 1953",
)


def project(position: jax.Array) -> jax.Array:
    """Rescale ``position`` [dim] to |x|² = dim (a zero vector becomes NaN; callers avoid it)."""
    x = jnp.asarray(position)
    return (x * (jnp.sqrt(jnp.asarray(x.shape[-1], x.dtype)) / jnp.linalg.norm(x, axis=-1, keepdims=True))).astype(
        x.dtype
    )


def init(position: jax.Array, energy_fn: Callable, log_prior_fn: Callable | None = None) -> State:
    """Start a chain at ``position`` projected onto the sphere |x|² = dim.

    Args:
        position: float [dim], nonzero (dim ≥ 2).
        energy_fn: ``x [dim] -> []`` energy E (without β); need not be differentiable.
        log_prior_fn: ``x [dim] -> []`` log prior w.r.t. the uniform measure on the sphere, or ``None`` (uniform).

    Returns:
        ``rwm.State`` at the projected position.
    """
    x = _check_position(position, "sphere.init")
    if x.shape[0] < 2:
        raise ValueError(f"sphere.init: the sphere needs dim >= 2, got dim = {x.shape[0]}")
    return _evaluate(project(x), energy_fn, log_prior_fn)


def _geodesic_proposal(key, x: jax.Array, step_size: jax.Array) -> jax.Array:
    dim = x.shape[0]
    radius = jnp.sqrt(jnp.asarray(dim, x.dtype))
    x_hat = x / radius
    xi = jax.random.normal(key, x.shape, x.dtype)
    xi_perp = xi - jnp.dot(xi, x_hat) * x_hat  # a Gaussian direction in the tangent space
    norm = jnp.linalg.norm(xi_perp)
    direction = xi_perp / jnp.where(norm > 0, norm, 1.0)
    # The rotation angle is reduced modulo 2π (cos/sin are unchanged, so the proposal is the same symmetric
    # geodesic move for any finite step). An infinite step gives a NaN proposal, which the accept step rejects
    # and flags divergent, so step-size adaptation backs off instead of producing NaN positions. (Clamping the
    # angle at π instead would be wrong: every direction then maps to the antipode −x and the chain only hops
    # between x and −x.)
    theta = jnp.mod(step_size * norm / radius, 2.0 * jnp.pi)
    moved = jnp.cos(theta) * x + radius * jnp.sin(theta) * direction
    return project(jnp.where(norm > 0, moved, x))


def step(
    key: jax.Array,
    state: State,
    energy_fn: Callable,
    beta: jax.Array,
    log_prior_fn: Callable | None,
    step_size: jax.Array,
) -> tuple[State, Info]:
    """One geodesic random-walk Metropolis step on |x|² = dim.

    Args:
        key: PRNG key, consumed.
        state: ``rwm.State`` of one chain (position on the sphere).
        energy_fn: ``x [dim] -> []`` energy E (without β); need not be differentiable.
        beta: float [] inverse temperature (traced).
        log_prior_fn: ``x [dim] -> []`` log prior on the sphere, or ``None`` (uniform).
        step_size: float [] (traced) tangent step per coordinate ≈ rotation angle in radians.

    Returns:
        ``(rwm.State, rwm.Info)``; the position keeps its dtype and |x|² = dim to rounding.
    """
    return _symmetric_step(key, state, energy_fn, beta, log_prior_fn, step_size, _geodesic_proposal, "sphere.step")
