"""Hamiltonian Monte Carlo with a fixed number of leapfrog steps and a diagonal mass matrix.

References: S. Duane, A. D. Kennedy, B. J. Pendleton, D. Roweth, "Hybrid Monte Carlo", Phys. Lett. B 195, 216
(1987); R. M. Neal, "MCMC using Hamiltonian dynamics", Handbook of Markov Chain Monte Carlo, ch. 5 (2011).

Potential U_β(x) = β E(x) − log prior(x), kinetic K(p) = ½ pᵀ M⁻¹ p with M⁻¹ = ``inverse_mass`` (scalar or
diagonal [dim]). Each step draws p ~ N(0, M), integrates ``num_integration_steps`` leapfrog steps of size
``step_size`` (``thermodl.kernels.integrators.leapfrog``) and accepts the end point with probability
min(1, exp(−ΔH)). ΔH = O(step_size²) for a trajectory of fixed length. With ``step_size_jitter`` j > 0 the
leapfrog step of each trajectory is ε·(1 + j·(2u − 1)), u ~ U[0, 1) drawn from ``fold_in(key, 0x6A17)``: a random
trajectory length breaks the resonances of fixed-length HMC (Neal 2011, §5.4.2.2); u is independent of the state,
so detailed balance holds for each drawn ε. The bare kernel defaults to j = 0 (BlackJAX-comparable); the engine's
default is ``SETTINGS``' 0.2. A trajectory that ends non-finite, or with
ΔH above ``divergence_threshold``, is flagged divergent (and, if non-finite, always rejected). HMC needs a smooth
target: a trajectory that leaves the prior's support usually turns NaN on the way and is flagged divergent; one that
merely ends outside it (ΔH = +inf with finite gradients) is an ordinary rejection.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from .integrators import (
    GradientState,
    _as,
    _beta_times,
    _check_position,
    _check_positive,
    _check_step,
    _concrete,
    _invalid_gradient,
    _select,
    gradient_state,
    kinetic_energy,
    leapfrog,
)
from .metropolis import metropolis_accept
from .settings import KernelSettings, Option, fraction, positive, positive_int

__all__ = ["State", "Info", "init", "step", "SETTINGS"]

SETTINGS = KernelSettings(
    kind="continuous",
    default_step_size=0.05,
    target_acceptance=0.8,
    needs_gradient=True,
    manifold="euclidean",
    model_args=(("log_prior_fn", "log_prior"),),
    options=(
        Option("num_integration_steps", 10, True, "leapfrog steps per trajectory", positive_int),
        Option("inverse_mass", 1.0, False, "diagonal inverse mass M^-1, scalar or [dim], > 0", positive),
        Option("step_size_jitter", 0.2, False, "j: each step uses eps*(1 + j*(2u - 1)), u ~ U[0, 1); 0 = off",
               fraction),
    ),
    reference="Duane et al. 1987; Neal 2011",
)

State = GradientState


class Info(NamedTuple):
    """Diagnostics of one step.

    Fields:
        acceptance_probability: float [] — min(1, exp(−ΔH)); 0 for a non-finite trajectory.
        is_accepted: bool [] — the end point was taken.
        is_divergent: bool [] — the trajectory ended non-finite (rejected) or at a finite ΔH >
            ``divergence_threshold`` (ending outside the prior's support, ΔH = +inf, is an ordinary rejection).
        energy_error: float [] — ΔH = H(end) − H(start), H = β E − log prior + K (NaN for a non-finite end).
        num_integration_steps: int32 [] — leapfrog steps taken (gradient evaluations).
    """

    acceptance_probability: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array
    energy_error: jax.Array
    num_integration_steps: jax.Array


def init(position: jax.Array, energy_fn: Callable, log_prior_fn: Callable | None = None) -> GradientState:
    """Start a chain at ``position``.

    Args:
        position: float [dim].
        energy_fn: ``x [dim] -> []`` energy E (without β), differentiable.
        log_prior_fn: ``x [dim] -> []`` log prior, or ``None`` for a flat prior.

    Returns:
        ``GradientState`` (energy, log prior and their gradients at ``position``).
    """
    return gradient_state(_check_position(position, "hmc.init"), energy_fn, log_prior_fn)


def _check_inverse_mass(inverse_mass, dim: int) -> None:
    if jnp.shape(inverse_mass) not in ((), (dim,)):
        raise ValueError(
            f"hmc.step: inverse_mass must be a scalar or have shape [dim] = ({dim},), got shape "
            f"{jnp.shape(inverse_mass)}"
        )
    _check_positive(inverse_mass, "inverse_mass", "hmc.step")


def step(
    key: jax.Array,
    state: GradientState,
    energy_fn: Callable,
    beta: jax.Array,
    log_prior_fn: Callable | None,
    step_size: jax.Array,
    num_integration_steps: int,
    inverse_mass: jax.Array | float = 1.0,
    divergence_threshold: float = 1000.0,
    step_size_jitter: jax.Array | float = 0.0,
) -> tuple[GradientState, Info]:
    """One HMC step (momentum refresh, leapfrog trajectory, Metropolis accept/reject).

    Args:
        key: PRNG key, consumed.
        state: ``GradientState`` of one chain.
        energy_fn: ``x [dim] -> []`` energy E (without β), differentiable.
        beta: float [] inverse temperature (traced).
        log_prior_fn: ``x [dim] -> []`` log prior, or ``None`` for a flat prior.
        step_size: float [] (traced) leapfrog step.
        num_integration_steps: static Python int ≥ 1, leapfrog steps per trajectory.
        inverse_mass: float [] or [dim] diagonal inverse mass M⁻¹ (traced), > 0; ideally the target's variances.
        divergence_threshold: ΔH above which the step is flagged divergent (BlackJAX's default, 1000).
        step_size_jitter: float [] j in [0, 1) (traced): the trajectory uses ε·(1 + j·(2u − 1)), u ~ U[0, 1) from
            ``fold_in(key, 0x6A17)``. A Python 0 (the default) skips the draw entirely.

    Returns:
        ``(GradientState, Info)``; the position keeps its dtype.
    """
    x = _check_step(state.position, step_size, "hmc.step")
    if isinstance(num_integration_steps, bool) or not isinstance(num_integration_steps, int) \
            or num_integration_steps < 1:
        raise ValueError(f"hmc.step: num_integration_steps must be a positive Python int, got "
                         f"{num_integration_steps!r}")
    _check_inverse_mass(inverse_mass, x.shape[0])
    jitter = _concrete(step_size_jitter)
    if jitter is not None and not (jitter.shape == () and 0.0 <= jitter < 1.0):
        raise ValueError(f"hmc.step: step_size_jitter must be a number in [0, 1), got {step_size_jitter!r}")
    if not (isinstance(step_size_jitter, (int, float)) and step_size_jitter == 0):  # arrays/tracers: always drawn
        u = jax.random.uniform(jax.random.fold_in(key, 0x6A17), (), jnp.result_type(step_size, float))
        step_size = step_size * (1.0 + step_size_jitter * (2.0 * u - 1.0))
    dtype = x.dtype
    beta = _as(beta, dtype)
    inverse_mass = _as(inverse_mass, dtype)
    key_momentum, key_accept = jax.random.split(key)
    momentum = jax.random.normal(key_momentum, x.shape, dtype) / jnp.sqrt(inverse_mass)

    new, new_momentum = leapfrog(
        state, momentum, energy_fn, log_prior_fn, beta, step_size, inverse_mass, num_integration_steps
    )
    delta_energy = new.energy - state.energy
    energy_error = (
        _beta_times(beta, delta_energy)
        - (new.log_prior - state.log_prior)
        + kinetic_energy(new_momentum, inverse_mass)
        - kinetic_energy(momentum, inverse_mass)
    )
    invalid = _invalid_gradient(new) | ~jnp.all(jnp.isfinite(new_momentum))
    energy_error = jnp.where(invalid, jnp.nan, energy_error)
    acc = metropolis_accept(key_accept, -energy_error)
    info = Info(
        acc.acceptance_probability,
        acc.is_accepted,
        # ΔH = +inf only for a log prior of −inf (outside the support): an ordinary rejection
        acc.is_divergent | (jnp.isfinite(energy_error) & (energy_error > divergence_threshold)),
        energy_error,
        jnp.asarray(num_integration_steps, jnp.int32),
    )
    return _select(acc.is_accepted, new, state), info
