"""Shared pieces of the gradient-based continuous kernels: the cached state, the leapfrog integrator, checks.

``GradientState`` is the one State of ``mala``, ``hmc``, ``langevin`` and ``sgld``: it caches the energy and the
log prior *and their gradients* separately, without β, so that the next step needs no extra evaluation and a
change of β (tempering, annealing, AIS) does not invalidate the state. The potential energy of the target
log p_β(x) = −β E(x) + log prior(x) is U_β(x) = β E(x) − log prior(x).

Leapfrog (Störmer–Verlet) integration: S. Duane, A. D. Kennedy, B. J. Pendleton, D. Roweth, "Hybrid Monte
Carlo", Phys. Lett. B 195, 216 (1987); R. M. Neal, "MCMC using Hamiltonian dynamics", Handbook of MCMC, ch. 5
(2011), §5.2.3. It is volume preserving and time reversible, and its energy error is O(step_size²) over a
trajectory of fixed length.

Conventions shared by every continuous kernel (documented once here):

* ``log_prior_fn=None`` means a flat log prior (0, zero gradient).
* A proposal whose energy is not finite (NaN or ±inf), whose log prior is NaN or +inf, or (gradient kernels)
  whose gradients are not finite is rejected and flagged divergent, at every β: nothing non-finite ever enters a
  state. A log prior of −inf (outside the prior's support) is an ordinary rejection.
* Convention 0·∞ = 0 for the energy term of a log ratio: at β = 0 the energy does not enter the acceptance.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "GradientState",
    "gradient_state",
    "potential_gradient",
    "kinetic_energy",
    "leapfrog",
    "flat_log_prior",
]


class GradientState(NamedTuple):
    """State of one chain of a gradient-based kernel (``mala``, ``hmc``, ``langevin``, ``sgld``).

    Fields:
        position: float [dim] — the current point x.
        energy: float [] — E(x), without β (for ``sgld``: the minibatch estimate, see ``thermodl.kernels.sgld``).
        energy_grad: float [dim] — ∇E(x), without β.
        log_prior: float [] — log prior(x).
        log_prior_grad: float [dim] — ∇ log prior(x).
    """

    position: jax.Array
    energy: jax.Array
    energy_grad: jax.Array
    log_prior: jax.Array
    log_prior_grad: jax.Array


def flat_log_prior(x: jax.Array) -> jax.Array:
    """The flat log prior, 0 everywhere (used when ``log_prior_fn`` is ``None``)."""
    return jnp.zeros((), x.dtype)


def _log_prior_fn(log_prior_fn: Callable | None) -> Callable:
    if log_prior_fn is None:
        return flat_log_prior
    if not callable(log_prior_fn):
        raise ValueError(f"log_prior_fn must be callable or None, got {log_prior_fn!r}")
    return log_prior_fn


def _strong(value: jax.Array) -> jax.Array:
    """Drop JAX weak typing so that scan carries keep one dtype (e.g. an energy_fn returning ``0.0 * x``)."""
    value = jnp.asarray(value)
    return jnp.asarray(value, dtype=value.dtype)


def _check_position(position, name: str, unit: str = "coordinate") -> jax.Array:
    """``position`` as a float [dim] array with dim ≥ 1 (``unit`` names an entry in the message: coordinate, site)."""
    position = jnp.asarray(position)
    if position.ndim != 1:
        raise ValueError(f"{name}: position must have shape [dim] (one chain), got shape {position.shape}")
    if position.shape[0] == 0:
        raise ValueError(f"{name}: position must have at least one {unit}, got shape {position.shape}")
    if not jnp.issubdtype(position.dtype, jnp.floating):
        raise ValueError(f"{name}: position must be a float array, got dtype {position.dtype}")
    return position


def _concrete(value) -> np.ndarray | None:
    """``value`` as a numpy array when it is concrete (Python / numpy / committed jax array), else ``None``.

    numpy, not jnp: inside a trace even jnp operations on constants are staged and cannot be branched on.
    """
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.asarray(value)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return None


def _check_positive(value, what: str, name: str) -> None:
    """Raise if a *concrete* ``value`` has an entry that is not > 0 (traced values cannot be checked)."""
    concrete = _concrete(value)
    if concrete is not None and not np.all(concrete > 0):
        raise ValueError(f"{name}: {what} must be positive, got {value!r}")


def _check_scalar(value, what: str, name: str) -> None:
    if jnp.ndim(value) != 0:
        raise ValueError(f"{name}: {what} must be a scalar (one chain), got shape {jnp.shape(value)}")


def _check_step(position, step_size, name: str) -> jax.Array:
    """The checks every continuous ``step`` starts with: ``position`` [dim] float, ``step_size`` a scalar > 0 (when
    concrete). Returns ``position`` as an array."""
    x = _check_position(position, name)
    _check_scalar(step_size, "step_size", name)
    _check_positive(step_size, "step_size", name)
    return x


def _as(value, dtype) -> jax.Array:
    return jnp.asarray(value, dtype=dtype)


def _neg_beta_delta(beta: jax.Array, delta_energy: jax.Array) -> jax.Array:
    """−β ΔE with the convention 0·∞ = 0 (NaN stays NaN)."""
    return jnp.where((beta == 0) & ~jnp.isnan(delta_energy), 0.0, -beta * delta_energy)


def _beta_times(beta: jax.Array, energy: jax.Array) -> jax.Array:
    """β E with the convention 0·∞ = 0 (NaN stays NaN)."""
    return jnp.where((beta == 0) & ~jnp.isnan(energy), 0.0, beta * energy)


def _invalid_value(energy: jax.Array, log_prior: jax.Array) -> jax.Array:
    """True when a proposal must be rejected as divergent: E not finite, or log prior NaN / +inf."""
    return ~jnp.isfinite(energy) | jnp.isnan(log_prior) | (log_prior == jnp.inf)


def _invalid_gradient(state: GradientState) -> jax.Array:
    """``_invalid_value``, or non-finite gradients inside the prior's support (outside it, log prior = −inf, the
    proposal is rejected anyway and its gradients never used)."""
    bad_grad = ~jnp.all(jnp.isfinite(state.energy_grad)) | ~jnp.all(jnp.isfinite(state.log_prior_grad))
    return _invalid_value(state.energy, state.log_prior) | ((state.log_prior > -jnp.inf) & bad_grad)


def _select(pred: jax.Array, new, old):
    """``new`` where ``pred`` else ``old``, leaf by leaf, keeping the dtypes of ``old``."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a.astype(b.dtype), b), new, old)


def gradient_state(position: jax.Array, energy_fn: Callable, log_prior_fn: Callable | None) -> GradientState:
    """Evaluate energy, log prior and both gradients at ``position`` (one ``value_and_grad`` each).

    Args:
        position: float [dim].
        energy_fn: ``x [dim] -> []`` energy E (without β).
        log_prior_fn: ``x [dim] -> []`` log prior, or ``None`` for a flat prior.

    Returns:
        ``GradientState``; gradients have the dtype of ``position``.
    """
    x = _check_position(position, "gradient_state")
    energy, energy_grad = jax.value_and_grad(energy_fn)(x)
    log_prior, log_prior_grad = jax.value_and_grad(_log_prior_fn(log_prior_fn))(x)
    return GradientState(
        x,
        _strong(energy),
        _as(energy_grad, x.dtype),
        _strong(log_prior),
        _as(log_prior_grad, x.dtype),
    )


def potential_gradient(state: GradientState, beta: jax.Array) -> jax.Array:
    """∇U_β(x) = β ∇E(x) − ∇ log prior(x) from the cached gradients; float [dim] (0·∞ = 0 at β = 0)."""
    beta = _as(beta, state.position.dtype)
    return _beta_times(beta, state.energy_grad) - state.log_prior_grad


def _langevin_move(key, state: GradientState, beta, h) -> jax.Array:
    """x + (h/2) ∇ log p_β(x) + √h ξ, ξ ~ N(0, I) from ``key``, using the cached gradients (the proposal of ``mala``
    and the move of ``langevin`` and ``sgld``); ``beta`` and ``h`` already in the position's dtype."""
    x = state.position
    noise = jax.random.normal(key, x.shape, x.dtype)
    return (x - 0.5 * h * potential_gradient(state, beta) + jnp.sqrt(h) * noise).astype(x.dtype)


def kinetic_energy(momentum: jax.Array, inverse_mass: jax.Array) -> jax.Array:
    """K(p) = ½ pᵀ M⁻¹ p for a scalar or diagonal [dim] inverse mass; float []."""
    return 0.5 * jnp.sum(inverse_mass * momentum**2)


def leapfrog(
    state: GradientState,
    momentum: jax.Array,
    energy_fn: Callable,
    log_prior_fn: Callable | None,
    beta: jax.Array,
    step_size: jax.Array,
    inverse_mass: jax.Array,
    num_steps: int,
) -> tuple[GradientState, jax.Array]:
    """``num_steps`` leapfrog steps of Hamiltonian dynamics H = U_β(x) + ½ pᵀ M⁻¹ p.

    Half kick, then ``num_steps`` × (drift, full kick), the last kick halved; one gradient evaluation per step.

    Args:
        state: ``GradientState`` at the start (its cached gradients give the first half kick).
        momentum: float [dim].
        energy_fn, log_prior_fn: as in ``gradient_state``.
        beta: float [] inverse temperature (traced).
        step_size: float [] integration step (traced).
        inverse_mass: float [] or [dim] diagonal M⁻¹.
        num_steps: static Python int ≥ 1.

    Returns:
        ``(GradientState, momentum [dim])`` at the end of the trajectory. Non-finite values propagate (the caller
        rejects the proposal as divergent).
    """
    dtype = state.position.dtype
    beta = _as(beta, dtype)
    eps = _as(step_size, dtype)
    inverse_mass = _as(inverse_mass, dtype)
    p = momentum - 0.5 * eps * potential_gradient(state, beta)

    def body(i, carry):
        st, p = carry
        x = st.position + eps * inverse_mass * p
        st = gradient_state(x, energy_fn, log_prior_fn)
        kick = jnp.where(i == num_steps - 1, 0.5 * eps, eps)
        p = p - kick * potential_gradient(st, beta)
        st = jax.tree.map(lambda a, b: a.astype(b.dtype), st, carry[0])  # scan-stable dtypes
        return st, p.astype(dtype)

    return jax.lax.fori_loop(0, num_steps, body, (state, p.astype(dtype)))
