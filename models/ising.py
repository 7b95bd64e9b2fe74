"""The two-dimensional Ising model on an L×M torus, with Kaufman's exact finite-lattice partition function.

Convention: spins s_i = ±1 on an L×M torus (L rows, M columns; site index i = row·M + col), periodic in both
directions,

    H(s) = −J Σ_⟨ij⟩ s_i s_j − h Σ_i s_i,

each torus bond counted once: every site is bonded to its right and its lower neighbour (2·L·M bonds). For L = 2
(or M = 2) the two bonds joining the same pair of rows (columns) are both counted, as in Kaufman's formula.
L, M ≥ 2. J > 0 is ferromagnetic.

References:
    B. Kaufman, "Crystal statistics. II. Partition function evaluated by spinor analysis", Phys. Rev. 76, 1232
    (1949) — exact Z of the finite torus; written as below by P. D. Beale, "Exact distribution of energies in the
    two-dimensional Ising model", Phys. Rev. Lett. 76, 78 (1996):

        Z = ½ (2 sinh 2K)^{LM/2} (Z₁ + Z₂ + Z₃ + Z₄),     K = βJ,
        Z₁ = Π_{r=0}^{L-1} 2 cosh(½ M γ_{2r+1}),   Z₂ = Π 2 sinh(½ M γ_{2r+1}),
        Z₃ = Π_{r=0}^{L-1} 2 cosh(½ M γ_{2r}),     Z₄ = Π 2 sinh(½ M γ_{2r}),
        cosh γ_l = cosh 2K cosh 2K* − cos(π l / L)  (l ≥ 1),   γ₀ = 2(K − K*),   tanh K* = e^{−2K}.

    γ₀ changes sign at K_c (K* > K above T_c), so Z₄ is negative above T_c; it is summed with its sign in log
    space. We evaluate γ_l through sinh²(γ_l/2) = sinh²(K − K*) + sin²(π l / 2L), which is free of cancellation
    near T_c and of overflow at large β. Valid for all L, M ≥ 2 (odd sizes included) and every K ≥ 0; for J < 0
    and L, M both even the sublattice gauge s_i → (−1)^{row+col} s_i maps K → −K.

    With h ≠ 0 (or J < 0 on a lattice with an odd side) log Z comes from the row-to-row transfer matrix
    (H. A. Kramers and G. H. Wannier, Phys. Rev. 60, 252 (1941)): Z = Tr T^ℓ over rows of width
    w = min(L, M) ≤ 12 (2^w × 2^w matrix, power by repeated squaring); larger lattices have no exact value there.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

from .base import DISCRETE, log_reference_binary
from .exact import ExactUnavailableError, _as_beta, _concrete, _float_dtype, _matmul

__all__ = ["Ising2D", "MAX_TRANSFER_WIDTH"]

MAX_TRANSFER_WIDTH = 12
_LOG2 = math.log(2.0)


def _log_2cosh(x):
    ax = jnp.abs(x)
    return ax + jnp.log1p(jnp.exp(-2.0 * ax))


def _log_abs_2sinh(x):
    ax = jnp.abs(x)
    return ax + jnp.log(-jnp.expm1(-2.0 * ax))


def _kaufman_log_partition(L: int, M: int, K: jax.Array) -> jax.Array:
    """log Z of the L×M torus at h = 0, K = βJ ≥ 0 (NaN for K < 0), by Kaufman's formula in log space."""
    positive = K > 0
    Kp = jnp.where(positive, K, 1.0)  # keeps both branches of the final `where` finite (and differentiable)
    K_dual = 0.5 * (jnp.log1p(jnp.exp(-2.0 * Kp)) - jnp.log(-jnp.expm1(-2.0 * Kp)))  # tanh K* = e^{−2K}
    d = Kp - K_dual  # γ₀ / 2, signed: > 0 below T_c
    ell = jnp.arange(1, 2 * L, dtype=K.dtype)
    s = jnp.sin(jnp.pi * ell / (2 * L))  # > 0 for l = 1..2L−1
    u = jnp.abs(d)[..., None]
    small = u < 20.0  # beyond, γ_l/2 = |K − K*| up to a relative e^{−40}
    u_small = jnp.where(small, u, 0.0)
    half_gamma = jnp.where(small, jnp.arcsinh(jnp.sqrt(jnp.sinh(u_small) ** 2 + s**2)), u)  # γ_l / 2, l ≥ 1
    x = M * half_gamma  # [..., 2L−1]: M γ_l / 2 for l = 1..2L−1
    x_odd, x_even = x[..., 0::2], x[..., 1::2]  # l = 1,3,..,2L−1 and l = 2,4,..,2L−2
    x0 = M * d  # M γ₀ / 2, signed
    log_terms = jnp.stack(
        [
            jnp.sum(_log_2cosh(x_odd), -1),
            jnp.sum(_log_abs_2sinh(x_odd), -1),
            _log_2cosh(x0) + jnp.sum(_log_2cosh(x_even), -1),
            _log_abs_2sinh(x0) + jnp.sum(_log_abs_2sinh(x_even), -1),
        ],
        axis=-1,
    )
    signs = jnp.stack([jnp.ones_like(x0), jnp.ones_like(x0), jnp.ones_like(x0), jnp.sign(x0)], axis=-1)
    log_sum, _ = jax.nn.logsumexp(log_terms, axis=-1, b=signs, return_sign=True)
    log_prefactor = -_LOG2 + 0.5 * L * M * (2.0 * Kp + jnp.log(-jnp.expm1(-4.0 * Kp)))  # ½ (2 sinh 2K)^{LM/2}
    log_z = jnp.where(positive, log_prefactor + log_sum, L * M * _LOG2)
    return jnp.where(K < 0, jnp.nan, log_z)


def _transfer_matrix_log_partition(L: int, M: int, K: jax.Array, H: jax.Array) -> jax.Array:
    """log Z = log Tr T^ℓ of the L×M torus with K = βJ, H = βh, rows of width w = min(L, M) (scalar K, H)."""
    w, length = (M, L) if M <= L else (L, M)  # Z is invariant under transposing the torus
    bits = (np.arange(2**w)[:, None] >> np.arange(w)[None, :]) & 1
    rows = np.where(bits == 1, 1.0, -1.0)  # all 2^w row configurations (NumPy: static under jit)
    intra = np.sum(rows * np.roll(rows, -1, axis=1), axis=1)  # bonds inside a periodic row
    mag = np.sum(rows, axis=1)
    inter = rows @ rows.T  # bonds between two consecutive rows
    e_row = K * intra + H * mag  # −β E_row
    log_t = K * inter + 0.5 * (e_row[:, None] + e_row[None, :])  # symmetric split keeps T symmetric
    shift = jnp.max(log_t)
    return length * shift + _log_trace_power(jnp.exp(log_t - shift), length)


def _log_trace_power(A: jax.Array, n: int) -> jax.Array:
    """log Tr Aⁿ for an entrywise-positive matrix A and static n ≥ 1, by binary exponentiation.

    Each product is rescaled by its (gradient-stopped) largest entry, so nothing over- or underflows; positive
    matrices make every step free of cancellation, and the result is a polynomial in A — differentiable to any
    order (an eigendecomposition would give NaN second derivatives at the degenerate eigenvalues of a symmetric
    lattice).
    """

    def rescale(X, log_scale):
        s = lax.stop_gradient(jnp.max(X))
        return X / s, log_scale + jnp.log(s)

    result, log_result = None, 0.0
    base, log_base = A, 0.0
    while True:
        if n & 1:
            if result is None:
                result, log_result = base, log_base
            else:
                result, log_result = rescale(_matmul(result, base), log_result + log_base)
        n >>= 1
        if not n:
            break
        base, log_base = rescale(_matmul(base, base), 2.0 * log_base)
    return log_result + jnp.log(jnp.trace(result))


@jax.jit
def _exact_jit(model: "Ising2D", beta: jax.Array) -> jax.Array:
    L, M = model.L, model.M
    dtype = beta.dtype
    J = jnp.asarray(model.J, dtype)
    h = jnp.asarray(model.h, dtype)
    even = L % 2 == 0 and M % 2 == 0

    def kaufman(beta):
        K = beta * J
        return _kaufman_log_partition(L, M, jnp.abs(K) if even else K)

    def transfer(beta):
        return jnp.vectorize(lambda b: _transfer_matrix_log_partition(L, M, b * J, b * h))(beta)

    # Kaufman applies for h = 0 and K ≥ 0 (β ≥ 0 is assumed), or any K on the bipartite torus. The predicate does
    # not depend on β, so a grid of β takes one branch (only a vmapped model turns the cond into a select).
    kaufman_ok = (h == 0) & ((J >= 0) | even)
    if min(L, M) <= MAX_TRANSFER_WIDTH:
        return lax.cond(kaufman_ok, kaufman, transfer, beta)
    return jnp.where(kaufman_ok, kaufman(beta), jnp.nan)


@struct.dataclass
class Ising2D:
    """Ising model on an L×M torus: H = −J Σ_⟨ij⟩ s_i s_j − h Σ_i s_i (see the module docstring).

    A pytree: J and h are (traced) leaves, L and M static. Configurations are flat ±1 float arrays x [L·M]
    with site index row·M + col.

    Args:
        L: number of rows (≥ 2).
        M: number of columns (≥ 2; default L).
        J: coupling (finite; J > 0 ferromagnetic).
        h: external field (finite).
    """

    L: int = struct.field(pytree_node=False)
    M: int | None = struct.field(pytree_node=False, default=None)
    J: Any = 1.0
    h: Any = 0.0

    kind = DISCRETE
    values = (-1.0, 1.0)

    def __post_init__(self):
        M = self.L if self.M is None else self.M
        for name, v in (("L", self.L), ("M", M)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2:
                raise ValueError(f"Ising2D: {name} must be an integer ≥ 2, got {v!r}")
        object.__setattr__(self, "L", int(self.L))
        object.__setattr__(self, "M", int(M))
        for name in ("J", "h"):
            v = _concrete(getattr(self, name))
            if v is not None and not np.all(np.isfinite(v)):
                raise ValueError(f"Ising2D: {name} must be finite, got {getattr(self, name)!r}")

    # ------------------------------------------------------------------ protocol

    @property
    def dim(self) -> int:
        """Number of spins L·M."""
        return self.L * self.M

    def energy(self, x: jax.Array) -> jax.Array:
        """E(x) for x [L·M] (±1) -> []."""
        s = x.reshape(self.L, self.M)
        bonds = jnp.sum(s * (jnp.roll(s, -1, axis=0) + jnp.roll(s, -1, axis=1)))
        return -self.J * bonds - self.h * jnp.sum(s)

    def _neighbour_sum(self, s: jax.Array) -> jax.Array:
        return jnp.roll(s, 1, 0) + jnp.roll(s, -1, 0) + jnp.roll(s, 1, 1) + jnp.roll(s, -1, 1)

    def delta_energy_all(self, x: jax.Array) -> jax.Array:
        """E(x with site i flipped) − E(x) for every i: 2 s_i (J Σ_{j∼i} s_j + h), [L·M]."""
        s = x.reshape(self.L, self.M)
        return (2.0 * s * (self.J * self._neighbour_sum(s) + self.h)).reshape(-1)

    def delta_energy(self, x: jax.Array, i: jax.Array) -> jax.Array:
        """E(x with site i flipped) − E(x), O(1): 2 s_i (J Σ_{j∼i} s_j + h)."""
        L, M = self.L, self.M
        r, c = i // M, i % M
        nb = x[((r + 1) % L) * M + c] + x[((r - 1) % L) * M + c] + x[r * M + (c + 1) % M] + x[r * M + (c - 1) % M]
        return 2.0 * x[i] * (self.J * nb + self.h)

    def block_masks(self) -> jax.Array:
        """Sets of mutually non-interacting sites, bool [B, L·M].

        L and M even: the two checkerboard colours (B = 2). Otherwise (an odd side makes the torus non-bipartite)
        a proper 3-colouring (B = 3): colour(r, c) = (f(r) + g(c)) mod 3 with f, g proper 3-colourings of the
        row and column cycles (0,1,0,1,… ending …,1,2 for odd length), so neighbours always differ in colour.
        """
        L, M = self.L, self.M
        r, c = np.divmod(np.arange(L * M), M)
        if L % 2 == 0 and M % 2 == 0:
            colour, n_colours = (r + c) % 2, 2
        else:
            def cycle_colouring(n):
                f = np.arange(n) % 2
                if n % 2:
                    f[-1] = 2
                return f

            colour, n_colours = (cycle_colouring(L)[r] + cycle_colouring(M)[c]) % 3, 3
        return jnp.asarray(colour[None, :] == np.arange(n_colours)[:, None])

    def sample_reference(self, key: jax.Array) -> jax.Array:
        """A uniform random configuration (the β = 0 ensemble), [L·M]."""
        return jnp.where(jax.random.bernoulli(key, 0.5, (self.dim,)), 1.0, -1.0).astype(_float_dtype())

    def log_reference_partition(self) -> float:
        """log Z(0) = L·M·log 2."""
        return log_reference_binary(self.dim)

    # ------------------------------------------------------------------ observables

    def magnetization(self, x: jax.Array) -> jax.Array:
        """Magnetisation per spin m = (1/LM) Σ_i s_i for x [..., L·M] -> [...]."""
        return jnp.mean(x, axis=-1)

    # ------------------------------------------------------------------ exact

    @property
    def exact_log_partition(self):
        """``beta [...] -> [...]`` exact log Z(β) for β ≥ 0, jittable with traced β, J and h.

        h = 0 (and J ≥ 0, or L and M even): Kaufman's closed form, any size. Otherwise: transfer matrix when
        min(L, M) ≤ 12. Present only when one of these applies to concrete J, h (so ``has_exact`` is truthful);
        with traced J, h on a lattice too wide for the transfer matrix the result is NaN where Kaufman does not
        apply. Compute references under ``jax.enable_x64(True)`` (relative accuracy ~1e-14 there).
        """
        if min(self.L, self.M) > MAX_TRANSFER_WIDTH:
            J, h = _concrete(self.J), _concrete(self.h)
            if h is not None and np.any(h != 0):
                raise ExactUnavailableError(
                    f"Ising2D.exact_log_partition: no exact log Z with h={self.h!r} ≠ 0 on a {self.L}×{self.M} "
                    f"lattice (transfer matrix needs min(L, M) ≤ {MAX_TRANSFER_WIDTH})"
                )
            if J is not None and np.any(J < 0) and (self.L % 2 or self.M % 2):
                raise ExactUnavailableError(
                    f"Ising2D.exact_log_partition: no exact log Z for J={self.J!r} < 0 on the non-bipartite "
                    f"{self.L}×{self.M} torus (transfer matrix needs min(L, M) ≤ {MAX_TRANSFER_WIDTH})"
                )

        def exact_log_partition(beta):
            return _exact_jit(self, _as_beta(beta))

        return exact_log_partition
