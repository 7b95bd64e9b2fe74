"""The Hopfield associative memory with Hebbian couplings.

Convention: spins s_i = ±1, i = 0..N−1; P stored patterns ξ^μ ∈ {−1, +1}^N (μ = 0..P−1); Hebb couplings
J_ij = (1/N) Σ_μ ξ^μ_i ξ^μ_j for i ≠ j, J_ii = 0; and

    H(s) = −½ Σ_{i≠j} J_ij s_i s_j = −(N/2) Σ_μ m_μ(s)² + P/2,     m_μ(s) = ξ^μ·s / N,

the second form (using s_i² = (ξ^μ_i)² = 1) costs O(PN) instead of O(N²). The retrieval overlaps m_μ are the
order parameters; retrieval is stable below the critical load α_c = P/N ≈ 0.138 at T = 0.

References:
    J. J. Hopfield, "Neural networks and physical systems with emergent collective computational abilities",
    PNAS 79, 2554 (1982).
    D. J. Amit, H. Gutfreund and H. Sompolinsky, "Storing infinite numbers of patterns in a spin-glass model of
    neural networks", Phys. Rev. Lett. 55, 1530 (1985).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from .base import DISCRETE, log_reference_binary
from .exact import ExactUnavailableError, _concrete, _dot, _float_dtype, _matmul, enumerate_log_partition

__all__ = ["Hopfield", "MAX_EXACT_SPINS"]

MAX_EXACT_SPINS = 20


@struct.dataclass
class Hopfield:
    """Hopfield network with Hebbian couplings built from ``patterns`` ξ [P, N] (see the module docstring).

    A pytree whose only leaf is the pattern matrix (traced: new patterns never recompile).

    Args:
        patterns: [P, N] entries ±1, P ≥ 1, N ≥ 1.
    """

    patterns: Any

    kind = DISCRETE
    values = (-1.0, 1.0)

    def __post_init__(self):
        xi = self.patterns
        if isinstance(xi, (list, tuple)):
            xi = jnp.asarray(xi, _float_dtype())
            object.__setattr__(self, "patterns", xi)
        shape = getattr(xi, "shape", None)
        if shape is None:  # a non-array leaf (e.g. a vmap axis spec): nothing to check
            return
        if len(shape) < 2 or shape[-1] < 1 or shape[-2] < 1:
            raise ValueError(f"Hopfield: patterns must have shape [P, N] with P, N ≥ 1, got {tuple(shape)}")
        v = _concrete(xi)
        if v is None:
            return
        if not np.all(np.abs(v) == 1):
            bad = float(v[np.abs(v) != 1].ravel()[0])
            raise ValueError(f"Hopfield: patterns must have entries ±1, got {bad!r}")
        object.__setattr__(self, "patterns", jnp.asarray(xi, _float_dtype()))

    @classmethod
    def random(cls, key: jax.Array, n_patterns: int, n: int) -> "Hopfield":
        """P independent uniform ±1 patterns of N spins.

        Args:
            key: PRNG key.
            n_patterns: P ≥ 1.
            n: N ≥ 1.

        Returns:
            ``Hopfield`` with patterns [P, N].
        """
        for name, v in (("n_patterns", n_patterns), ("n", n)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Hopfield.random: {name} must be a positive integer, got {v!r}")
        xi = jnp.where(jax.random.bernoulli(key, 0.5, (n_patterns, n)), 1.0, -1.0)
        return cls(xi.astype(_float_dtype()))

    # ------------------------------------------------------------------ protocol

    @property
    def dim(self) -> int:
        """Number of spins N."""
        return self.patterns.shape[-1]

    @property
    def n_patterns(self) -> int:
        """Number of stored patterns P."""
        return self.patterns.shape[-2]

    def couplings(self) -> jax.Array:
        """The Hebb matrix J [N, N], J_ij = (1/N) Σ_μ ξ^μ_i ξ^μ_j, zero diagonal."""
        J = _matmul(self.patterns.T, self.patterns) / self.dim
        return J * (1.0 - jnp.eye(self.dim, dtype=J.dtype))

    def energy(self, x: jax.Array) -> jax.Array:
        """E(x) = −(1/2N) Σ_μ (ξ^μ·x)² + P/2 for x [N] (±1) -> []."""
        m = _matmul(self.patterns, x)
        return -0.5 * jnp.sum(m**2) / self.dim + 0.5 * self.n_patterns

    def local_field(self, x: jax.Array) -> jax.Array:
        """h_i = Σ_{j≠i} J_ij x_j = (1/N)(Σ_μ ξ^μ_i (ξ^μ·x) − P x_i), [N]."""
        return (_matmul(self.patterns.T, _matmul(self.patterns, x)) - self.n_patterns * x) / self.dim

    def delta_energy(self, x: jax.Array, i: jax.Array) -> jax.Array:
        """E(x with spin i flipped) − E(x) = 2 x_i h_i, O(PN)."""
        h_i = (_dot(self.patterns[:, i], _matmul(self.patterns, x)) - self.n_patterns * x[i]) / self.dim
        return 2.0 * x[i] * h_i

    def delta_energy_all(self, x: jax.Array) -> jax.Array:
        """ΔE for each single flip, 2 x ∘ h(x), [N]."""
        return 2.0 * x * self.local_field(x)

    def sample_reference(self, key: jax.Array) -> jax.Array:
        """A uniform random configuration (the β = 0 ensemble), [N]."""
        return jnp.where(jax.random.bernoulli(key, 0.5, (self.dim,)), 1.0, -1.0).astype(_float_dtype())

    def log_reference_partition(self) -> float:
        """log Z(0) = N log 2."""
        return log_reference_binary(self.dim)

    # ------------------------------------------------------------------ observables

    def retrieval_overlap(self, x: jax.Array) -> jax.Array:
        """Overlaps with the stored patterns m_μ = ξ^μ·x / N for x [..., N] -> [..., P]."""
        return _matmul(x, self.patterns.T) / self.dim

    def overlap(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """Replica overlap q = x·y / N for x, y [..., N] -> [...]."""
        return jnp.sum(x * y, axis=-1) / self.dim

    # ------------------------------------------------------------------ exact

    @property
    def exact_log_partition(self):
        """``beta [...] -> [...]`` exact log Z(β) by chunked enumeration of the 2^N states (N ≤ 20; absent for
        larger N, so ``has_exact`` is truthful). Jittable with traced β and patterns; use ``jax.enable_x64(True)``."""
        if self.dim > MAX_EXACT_SPINS:
            raise ExactUnavailableError(
                f"Hopfield.exact_log_partition: N={self.dim} spins is too many to enumerate "
                f"(limit {MAX_EXACT_SPINS})"
            )

        def exact_log_partition(beta):
            return enumerate_log_partition(self, beta)

        return exact_log_partition
