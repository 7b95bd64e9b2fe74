"""The one Metropolis–Hastings accept/reject used by every kernel.

Reference: N. Metropolis, A. Rosenbluth, M. Rosenbluth, A. Teller, E. Teller, J. Chem. Phys. 21, 1087 (1953);
W. K. Hastings, Biometrika 57, 97 (1970).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["metropolis_accept", "Acceptance"]


class Acceptance(NamedTuple):
    """Outcome of one accept/reject decision.

    Fields:
        is_accepted: bool [] — whether the proposal was taken.
        acceptance_probability: float [] — min(1, exp(log_ratio)); 0 for a NaN/inf log ratio.
        is_divergent: bool [] — the log ratio was NaN (the proposal is then always rejected).
    """

    is_accepted: jax.Array
    acceptance_probability: jax.Array
    is_divergent: jax.Array


def metropolis_accept(key: jax.Array, log_ratio: jax.Array) -> Acceptance:
    """Accept with probability min(1, exp(log_ratio)); ``log u < log_ratio`` with u ~ U(0, 1).

    Args:
        key: PRNG key, consumed.
        log_ratio: float [] — log target ratio plus proposal terms, e.g. −β ΔE + Δ log prior + log q(x|x')/q(x'|x).
            A NaN is treated as a divergent proposal and rejected.

    Returns:
        ``Acceptance`` with scalar fields.
    """
    is_nan = jnp.isnan(log_ratio)
    safe = jnp.where(is_nan, -jnp.inf, log_ratio)
    log_u = jnp.log(jax.random.uniform(key, (), dtype=jnp.result_type(safe, jnp.float32)))
    accepted = log_u < safe
    prob = jnp.exp(jnp.minimum(safe, 0.0))
    return Acceptance(accepted, prob, is_nan)
