"""The Sherrington–Kirkpatrick spin glass (and any Ising model with a given symmetric coupling matrix).

Convention: spins s_i = ±1, i = 0..N−1, symmetric couplings J [N, N] with zero diagonal,

    H(s) = −Σ_{i<j} J_ij s_i s_j = −½ sᵀ J s.

``SK.random`` draws the SK disorder J_ij = J_ji ~ N(0, scale²/N) (i < j), for which the thermodynamic limit has
its spin-glass transition at β = 1/scale.

References:
    D. Sherrington and S. Kirkpatrick, "Solvable model of a spin-glass", Phys. Rev. Lett. 35, 1792 (1975).
    G. Parisi, "Infinite number of order parameters for spin-glasses", Phys. Rev. Lett. 43, 1754 (1979).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from .base import DISCRETE, log_reference_binary
from .exact import ExactUnavailableError, _concrete, _dot, _float_dtype, _matmul, enumerate_log_partition

__all__ = ["SK", "MAX_EXACT_SPINS"]

MAX_EXACT_SPINS = 20


def _validate_couplings(J: Any, name: str) -> Any:
    """Check a coupling matrix [..., N, N]; returns it symmetrised exactly when its value is known."""
    if isinstance(J, (list, tuple)):
        J = jnp.asarray(J, _float_dtype())
    shape = getattr(J, "shape", None)
    if shape is None:  # a non-array leaf (e.g. a vmap axis spec built with tree.map): nothing to check
        return J
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"{name}: J must be a square matrix [N, N], got shape {tuple(shape)}")
    if shape[-1] < 1:
        raise ValueError(f"{name}: J must have N ≥ 1 spins, got shape {tuple(shape)}")
    v = _concrete(J)
    if v is None:
        return J
    J = jnp.asarray(J)
    if not jnp.issubdtype(J.dtype, jnp.floating):
        J = J.astype(_float_dtype())
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name}: J must be finite, got {int(np.sum(~np.isfinite(v)))} NaN/inf entries")
    diag = np.diagonal(v, axis1=-2, axis2=-1)
    if np.any(diag != 0):
        raise ValueError(f"{name}: J must have a zero diagonal, got max |J_ii| = {np.max(np.abs(diag)):.3g}")
    asym = np.max(np.abs(v - np.swapaxes(v, -1, -2)))
    if asym > 1e-5 * max(np.max(np.abs(v)), 1e-30):
        raise ValueError(f"{name}: J must be symmetric, got max |J_ij − J_ji| = {asym:.3g}")
    if asym > 0:  # rounding-level asymmetry (e.g. from a matmul): symmetrise so E and ΔE agree exactly
        J = 0.5 * (J + jnp.swapaxes(J, -1, -2))
    return J


@struct.dataclass
class SK:
    """Ising spin glass H = −½ sᵀJs = −Σ_{i<j} J_ij s_i s_j with s ∈ {−1, +1}^N (see the module docstring).

    A pytree whose only leaf is J (traced: a new disorder sample never recompiles).

    Args:
        J: [N, N] symmetric couplings with zero diagonal, finite.
    """

    J: Any

    kind = DISCRETE
    values = (-1.0, 1.0)

    def __post_init__(self):
        object.__setattr__(self, "J", _validate_couplings(self.J, "SK"))

    @classmethod
    def random(cls, key: jax.Array, n: int, scale: float = 1.0) -> "SK":
        """SK disorder: J_ij = J_ji ~ N(0, scale²/n) for i < j, J_ii = 0.

        Args:
            key: PRNG key.
            n: number of spins (≥ 1).
            scale: coupling scale (> 0); the N → ∞ spin-glass transition is at β = 1/scale.

        Returns:
            ``SK`` with float couplings of the default dtype.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"SK.random: n must be a positive integer, got {n!r}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"SK.random: scale must be positive and finite, got {scale!r}")
        g = jax.random.normal(key, (n, n), _float_dtype()) * (scale / math.sqrt(n))
        upper = jnp.triu(g, 1)
        return cls(upper + upper.T)

    # ------------------------------------------------------------------ protocol

    @property
    def dim(self) -> int:
        """Number of spins N."""
        return self.J.shape[-1]

    def energy(self, x: jax.Array) -> jax.Array:
        """E(x) = −½ xᵀJx for x [N] -> []."""
        return -0.5 * _dot(x, _matmul(self.J, x))

    def local_field(self, x: jax.Array) -> jax.Array:
        """h_i = Σ_j J_ij x_j, [N]."""
        return _matmul(self.J, x)

    def delta_energy(self, x: jax.Array, i: jax.Array) -> jax.Array:
        """E(x with spin i flipped) − E(x) = 2 x_i Σ_j J_ij x_j, O(N)."""
        return 2.0 * x[i] * _dot(self.J[i], x)

    def delta_energy_all(self, x: jax.Array) -> jax.Array:
        """ΔE for each single flip, 2 x ∘ (J x), [N]."""
        return 2.0 * x * _matmul(self.J, x)

    def sample_reference(self, key: jax.Array) -> jax.Array:
        """A uniform random configuration (the β = 0 ensemble), [N]."""
        return jnp.where(jax.random.bernoulli(key, 0.5, (self.dim,)), 1.0, -1.0).astype(_float_dtype())

    def log_reference_partition(self) -> float:
        """log Z(0) = N log 2."""
        return log_reference_binary(self.dim)

    # ------------------------------------------------------------------ observables

    def overlap(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """Replica overlap q = x·y / N for x, y [..., N] -> [...]."""
        return jnp.sum(x * y, axis=-1) / self.dim

    def magnetization(self, x: jax.Array) -> jax.Array:
        """Magnetisation per spin m = (1/N) Σ_i x_i for x [..., N] -> [...]."""
        return jnp.mean(x, axis=-1)

    # ------------------------------------------------------------------ exact

    @property
    def exact_log_partition(self):
        """``beta [...] -> [...]`` exact log Z(β) by chunked enumeration of the 2^N states (N ≤ 20; absent for
        larger N, so ``has_exact`` is truthful). Jittable with traced β and J; use ``jax.enable_x64(True)``."""
        if self.dim > MAX_EXACT_SPINS:
            raise ExactUnavailableError(
                f"SK.exact_log_partition: N={self.dim} spins is too many to enumerate (limit {MAX_EXACT_SPINS})"
            )

        def exact_log_partition(beta):
            return enumerate_log_partition(self, beta)

        return exact_log_partition
