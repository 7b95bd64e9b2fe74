"""Single-site heat-bath (Glauber) updates on binary configurations, one systematic sweep per step.

Reference: R. J. Glauber, "Time-dependent statistics of the Ising model", J. Math. Phys. 4, 294 (1963); the
heat-bath / Gibbs-sampler update of S. Geman and D. Geman, IEEE Trans. PAMI 6, 721 (1984). Site i is redrawn
from its conditional distribution given the others: it ends up flipped with probability
sigmoid(−β ΔE_i) = 1 / (1 + exp(β ΔE_i)), whatever its current value, which leaves the Boltzmann
distribution invariant; the sweep composes dim such updates in systematic order.

Sites take the two ``values = (lo, hi)``; flipping maps ``x_i -> lo + hi - x_i``. Convention 0·∞ = 0 (at β = 0
every site is redrawn uniformly, even where ΔE = ±inf). A NaN ΔE is divergent: the site is left unchanged.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from .flip_metropolis import _check_position, _check_values, _neg_beta_delta
from .settings import KernelSettings

__all__ = ["HeatBathState", "HeatBathInfo", "init", "step", "SETTINGS"]

SETTINGS = KernelSettings(
    kind="discrete",
    default_step_size=None,
    target_acceptance=None,
    needs_gradient=False,
    manifold=None,
    model_args=(("delta_energy_fn", "delta_energy"), ("values", "values")),
    reference="Glauber 1963; Geman & Geman 1984",
)


class HeatBathState(NamedTuple):
    """State of one chain.

    Fields:
        position: float [dim] — the configuration, sites in ``values``.
        energy: float [] — E(position) (without β), kept current by adding the ΔE of each flip.
    """

    position: jax.Array
    energy: jax.Array


class HeatBathInfo(NamedTuple):
    """Diagnostics of one sweep.

    Fields:
        acceptance_probability: float [] — mean over the dim sites of the flip probability sigmoid(−β ΔE).
        is_accepted: bool [] — at least one site flipped during the sweep.
        is_divergent: bool [] — some ΔE was NaN during the sweep (those sites were left unchanged).
        num_flips: int32 [] — number of sites that flipped in the sweep.
    """

    acceptance_probability: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array
    num_flips: jax.Array


def init(position: jax.Array, energy_fn: Callable) -> HeatBathState:
    """Start a chain at ``position``.

    Args:
        position: float [dim] — initial configuration (sites in ``values``).
        energy_fn: ``x [dim] -> []`` energy.

    Returns:
        ``HeatBathState`` with the energy evaluated once.
    """
    position = _check_position(position, "heat_bath.init")
    return HeatBathState(position, jnp.asarray(energy_fn(position)))


def step(
    key: jax.Array,
    state: HeatBathState,
    energy_fn: Callable,
    beta: jax.Array,
    delta_energy_fn: Callable,
    values: tuple[float, float],
) -> tuple[HeatBathState, HeatBathInfo]:
    """One sweep of heat-bath updates of sites 0, 1, ..., dim−1 in systematic order.

    Site i flips when ``u_i < sigmoid(−β ΔE_i)``, u_i ~ U[0, 1), ΔE_i = ``delta_energy_fn(x, i)`` on the
    current configuration (after the updates of sites < i in this sweep).

    Args:
        key: PRNG key, consumed (one uniform per site, drawn up front).
        state: ``HeatBathState`` of one chain.
        energy_fn: ``x [dim] -> []``; unused by the sweep (energies follow ΔE), kept for the common signature.
        beta: float [] inverse temperature (traced).
        delta_energy_fn: ``(x [dim], i int []) -> []`` = E(x with site i flipped) − E(x).
        values: static ``(lo, hi)`` site values.

    Returns:
        ``(HeatBathState, HeatBathInfo)``; the new energy is the old one plus the ΔE of every flip.
    """
    del energy_fn
    lo, hi = _check_values(values, "heat_bath.step")
    x0 = _check_position(state.position, "heat_bath.step")
    dim = x0.shape[0]
    u = jax.random.uniform(key, (dim,), dtype=x0.dtype)
    e0 = jnp.asarray(state.energy)

    def body(i, carry):
        x, e, sum_p, n_flips, divergent = carry
        de = delta_energy_fn(x, i)
        p_flip = jax.nn.sigmoid(_neg_beta_delta(beta, de))  # NaN for a NaN ΔE: the comparison is False
        flip = u[i] < p_flip
        xi = x[i]
        x = x.at[i].set(jnp.where(flip, lo + hi - xi, xi))
        e = e + jnp.where(flip, de, 0.0).astype(e.dtype)
        sum_p = sum_p + jnp.nan_to_num(p_flip, nan=0.0).astype(sum_p.dtype)
        return x, e, sum_p, n_flips + flip.astype(jnp.int32), divergent | jnp.isnan(de)

    p_dtype = jnp.result_type(x0.dtype, jnp.float32)
    init_carry = (x0, e0, jnp.zeros((), p_dtype), jnp.zeros((), jnp.int32), jnp.zeros((), bool))
    x, e, sum_p, n_flips, divergent = jax.lax.fori_loop(0, dim, body, init_carry)
    info = HeatBathInfo(
        acceptance_probability=sum_p / dim,
        is_accepted=n_flips > 0,
        is_divergent=divergent,
        num_flips=n_flips,
    )
    return HeatBathState(x, e), info
