"""Single-site Metropolis flips on binary configurations, one sweep of dim attempts per step.

Reference: N. Metropolis, A. Rosenbluth, M. Rosenbluth, A. Teller, E. Teller, "Equation of state calculations by
fast computing machines", J. Chem. Phys. 21, 1087 (1953). Each single-site update satisfies detailed balance, so
a sweep (a composition of them) leaves the Boltzmann distribution invariant.

Configurations are float vectors ``x [dim]`` whose sites take the two ``values = (lo, hi)`` (e.g. ``(-1., 1.)``
spins or ``(0., 1.)`` bits); flipping site i maps ``x_i -> lo + hi - x_i``.

Site order. A sweep is dim single-site attempts. ``order="systematic"`` visits 0, 1, ..., dim−1; it leaves the
Boltzmann distribution invariant but is *not ergodic* on degenerate models: ΔE = 0 flips are always accepted, so
states where every flip of the sweep has ΔE = 0 at its turn form deterministic closed cycles (on the 3×3 periodic
Ising model 8 of the 512 states, e.g. the frustrated checkerboard, never relax; tests/kernels/test_discrete.py shows it). The default
``order="random"`` draws the dim sites uniformly with replacement (random-scan Metropolis): every single flip of
finite ΔE then has positive probability, so the chain is irreducible for any model with finite energies.

Convention 0·∞ = 0: at β = 0 every flip is accepted, even one with ΔE = +inf (β = 0 is the counting measure over
all 2^dim states, the AIS starting point). A NaN ΔE is divergent and rejected.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from .integrators import _check_position as _check_float_position
from .integrators import _neg_beta_delta
from .metropolis import metropolis_accept
from .settings import KernelSettings, Option, one_of

__all__ = ["FlipState", "FlipInfo", "init", "step", "ORDERS", "SETTINGS"]

ORDERS = ("random", "systematic")

SETTINGS = KernelSettings(
    kind="discrete",
    default_step_size=None,
    target_acceptance=None,
    needs_gradient=False,
    manifold=None,
    model_args=(("delta_energy_fn", "delta_energy"), ("values", "values")),
    options=(
        Option("order", "random", True, "site order of a sweep: 'random' (ergodic) or 'systematic'", one_of(*ORDERS)),
    ),
    reference="Metropolis et al. 1953",
)


class FlipState(NamedTuple):
    """State of one chain.

    Fields:
        position: float [dim] — the configuration, sites in ``values``.
        energy: float [] — E(position) (without β), kept current by adding the accepted ΔE.
    """

    position: jax.Array
    energy: jax.Array


class FlipInfo(NamedTuple):
    """Diagnostics of one sweep.

    Fields:
        acceptance_probability: float [] — mean over the dim attempts of min(1, exp(−β ΔE)).
        is_accepted: bool [] — at least one flip was accepted during the sweep.
        is_divergent: bool [] — some ΔE (or −β ΔE) was NaN during the sweep (those flips were rejected).
        num_flips: int32 [] — number of accepted flips in the sweep.
    """

    acceptance_probability: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array
    num_flips: jax.Array


def _check_values(values, name: str) -> tuple:
    """Validate the static ``(lo, hi)`` pair of site values."""
    if not isinstance(values, (tuple, list)) or len(values) != 2:
        raise ValueError(f"{name}: values must be a static pair (lo, hi), got {values!r}")
    lo, hi = values
    try:
        same = float(lo) == float(hi)
    except (TypeError, jax.errors.ConcretizationTypeError):
        same = False  # traced values: cannot check, trust the caller
    if same:
        raise ValueError(f"{name}: values must be two distinct site values, got {values!r}")
    return lo, hi


def _check_position(position, name: str) -> jax.Array:
    """``position`` as a float [dim] array with at least one site (shared with ``heat_bath`` and ``block_gibbs``)."""
    return _check_float_position(position, name, unit="site")


def init(position: jax.Array, energy_fn: Callable) -> FlipState:
    """Start a chain at ``position``.

    Args:
        position: float [dim] — initial configuration (sites in ``values``).
        energy_fn: ``x [dim] -> []`` energy.

    Returns:
        ``FlipState`` with the energy evaluated once.
    """
    position = _check_position(position, "flip_metropolis.init")
    return FlipState(position, jnp.asarray(energy_fn(position)))


def step(
    key: jax.Array,
    state: FlipState,
    energy_fn: Callable,
    beta: jax.Array,
    delta_energy_fn: Callable,
    values: tuple[float, float],
    order: str = "random",
) -> tuple[FlipState, FlipInfo]:
    """One sweep: dim single-site Metropolis flip attempts, one after the other.

    The attempt at site i flips it when ``log u < −β ΔE_i`` (``metropolis_accept``), ΔE_i =
    ``delta_energy_fn(x, i)`` evaluated on the current configuration (after the earlier attempts of the sweep).

    Args:
        key: PRNG key, consumed (sites and one accept key per attempt).
        state: ``FlipState`` of one chain.
        energy_fn: ``x [dim] -> []``; unused by the sweep itself (energies follow ΔE), kept for the common
            kernel signature.
        beta: float [] inverse temperature (traced).
        delta_energy_fn: ``(x [dim], i int []) -> []`` = E(x with site i flipped) − E(x).
        values: static ``(lo, hi)`` site values.
        order: static, ``"random"`` (default: dim sites uniformly at random, with replacement; ergodic) or
            ``"systematic"`` (0, 1, ..., dim−1; not ergodic on degenerate models, see the module docstring).

    Returns:
        ``(FlipState, FlipInfo)``; the new energy is the old one plus the accepted ΔE's.
    """
    del energy_fn
    lo, hi = _check_values(values, "flip_metropolis.step")
    if order not in ORDERS:
        raise ValueError(f"flip_metropolis.step: order must be one of {ORDERS}, got {order!r}")
    x0 = _check_position(state.position, "flip_metropolis.step")
    dim = x0.shape[0]
    key_sites, key_accept = jax.random.split(key)
    if order == "random":
        sites = jax.random.randint(key_sites, (dim,), 0, dim)
    else:
        sites = jnp.arange(dim)
    keys = jax.random.split(key_accept, dim)
    e0 = jnp.asarray(state.energy)

    def body(t, carry):
        x, e, sum_p, n_flips, divergent = carry
        i = sites[t]
        de = delta_energy_fn(x, i)
        acc = metropolis_accept(keys[t], _neg_beta_delta(beta, de))
        xi = x[i]
        x = x.at[i].set(jnp.where(acc.is_accepted, lo + hi - xi, xi))
        e = e + jnp.where(acc.is_accepted, de, 0.0).astype(e.dtype)
        sum_p = sum_p + acc.acceptance_probability.astype(sum_p.dtype)
        n_flips = n_flips + acc.is_accepted.astype(jnp.int32)
        return x, e, sum_p, n_flips, divergent | acc.is_divergent

    p_dtype = jnp.result_type(x0.dtype, jnp.float32)
    init_carry = (x0, e0, jnp.zeros((), p_dtype), jnp.zeros((), jnp.int32), jnp.zeros((), bool))
    x, e, sum_p, n_flips, divergent = jax.lax.fori_loop(0, dim, body, init_carry)
    info = FlipInfo(
        acceptance_probability=sum_p / dim,
        is_accepted=n_flips > 0,
        is_divergent=divergent,
        num_flips=n_flips,
    )
    return FlipState(x, e), info
