"""The restricted Boltzmann machine as a discrete Gibbs ensemble over both layers.

Convention: visible units v [n_v], hidden units h [n_h], each in {0, 1} (``units="binary"``) or {−1, +1}
(``units="spin"``); weights W [n_v, n_h], biases a [n_v], b [n_h];

    E(v, h) = −a·v − b·h − vᵀ W h,     x = concat(v, h)  [n_v + n_h],

and Z(β) = Σ_{v,h} exp(−β E(v, h)) over both layers. Given one layer the other factorises, so

    Σ_h exp(−β E(v, h)) = exp(−β F(v)),   F(v) = −a·v − (1/β) Σ_j φ(β (b_j + (vW)_j)),

with φ(z) = log(1 + e^z) for binary units and log(2 cosh z) for spins (and symmetrically for h). The exact log Z
enumerates the smaller layer and sums the larger one out this way (min(n_v, n_h) ≤ 20).

References:
    P. Smolensky, "Information processing in dynamical systems: foundations of harmony theory", in Parallel
    Distributed Processing, Vol. 1 (1986); G. E. Hinton, "Training products of experts by minimizing contrastive
    divergence", Neural Comput. 14, 1771 (2002); R. Salakhutdinov and I. Murray, "On the quantitative analysis of
    deep belief networks", ICML (2008) (exact log Z of small RBMs by summing out one layer).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from .base import DISCRETE, log_reference_binary
from .exact import ExactUnavailableError, _as_beta, _concrete, _dot, _float_dtype, _matmul, enumerate_log_sum

__all__ = ["RBM", "MAX_EXACT_LAYER"]

MAX_EXACT_LAYER = 20
_UNITS = {"binary": (0.0, 1.0), "spin": (-1.0, 1.0)}


def _log_unit_sum(z: jax.Array, units: str) -> jax.Array:
    """φ(z) = log Σ_{u ∈ values} e^{z u}: softplus(z) (binary) or log 2cosh z (spin)."""
    if units == "binary":
        return jnp.logaddexp(0.0, z)
    return jnp.logaddexp(z, -z)


def _check_vector(x: Any, n: int, name: str):
    shape = getattr(x, "shape", None)
    if shape is not None and (len(shape) < 1 or shape[-1] != n):
        raise ValueError(f"RBM: {name} must have shape [{n}], got {tuple(shape)}")


@jax.jit
def _exact_jit(model: "RBM", beta: jax.Array) -> jax.Array:
    """log Z: enumerate the smaller layer, sum the other out analytically."""
    W, a, b = model.W, model.a, model.b
    if model.n_hidden > model.n_visible:  # enumerate the visible layer instead: swap the roles
        W, a, b = W.T, b, a
    n_enum = W.shape[1]

    def one(beta):
        def log_weight(hs):  # hs [chunk, n_enum] -> [chunk]
            fields = _matmul(hs, W.T) + a  # [chunk, n_sum]
            return beta * _matmul(hs, b) + jnp.sum(_log_unit_sum(beta * fields, model.units), axis=-1)

        return enumerate_log_sum(log_weight, n_enum, model.values, dtype=beta.dtype)

    return jnp.vectorize(one)(beta)


@struct.dataclass
class RBM:
    """Restricted Boltzmann machine E(v, h) = −a·v − b·h − vᵀWh over x = concat(v, h) (see module docstring).

    A pytree with leaves W, a, b (traced: new weights never recompile) and static ``units``.

    Args:
        W: [n_v, n_h] weights, finite, n_v, n_h ≥ 1.
        a: [n_v] visible biases (default zeros).
        b: [n_h] hidden biases (default zeros).
        units: "binary" (values {0, 1}) or "spin" (values {−1, +1}).
    """

    W: Any
    a: Any = None
    b: Any = None
    units: str = struct.field(pytree_node=False, default="binary")

    kind = DISCRETE

    def __post_init__(self):
        if self.units not in _UNITS:
            raise ValueError(f"RBM: units must be 'binary' or 'spin', got {self.units!r}")
        for name in ("W", "a", "b"):
            v = getattr(self, name)
            if isinstance(v, (list, tuple, np.ndarray)):
                v = jnp.asarray(v)
                object.__setattr__(self, name, v if jnp.issubdtype(v.dtype, jnp.floating) else v.astype(_float_dtype()))
        shape = getattr(self.W, "shape", None)
        if shape is None:  # a non-array leaf (e.g. a vmap axis spec): nothing to check
            return
        if len(shape) < 2 or shape[-2] < 1 or shape[-1] < 1:
            raise ValueError(f"RBM: W must have shape [n_visible, n_hidden] with both ≥ 1, got {tuple(shape)}")
        n_v, n_h = shape[-2], shape[-1]
        dtype = self.W.dtype if jnp.issubdtype(self.W.dtype, jnp.floating) else _float_dtype()
        if self.a is None:
            object.__setattr__(self, "a", jnp.zeros(n_v, dtype))
        if self.b is None:
            object.__setattr__(self, "b", jnp.zeros(n_h, dtype))
        _check_vector(self.a, n_v, "a")
        _check_vector(self.b, n_h, "b")
        for name in ("W", "a", "b"):
            v = _concrete(getattr(self, name))
            if v is not None and not np.all(np.isfinite(v)):
                raise ValueError(f"RBM: {name} must be finite, got {int(np.sum(~np.isfinite(v)))} NaN/inf entries")

    @classmethod
    def random(cls, key: jax.Array, n_visible: int, n_hidden: int, scale: float = 1.0, units: str = "binary"):
        """Random RBM: W_ij, a_i, b_j i.i.d. N(0, scale²).

        Args:
            key: PRNG key.
            n_visible, n_hidden: layer sizes (≥ 1).
            scale: standard deviation of weights and biases (> 0).
            units: "binary" or "spin".

        Returns:
            ``RBM``.
        """
        for name, v in (("n_visible", n_visible), ("n_hidden", n_hidden)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"RBM.random: {name} must be a positive integer, got {v!r}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"RBM.random: scale must be positive and finite, got {scale!r}")
        kw, ka, kb = jax.random.split(key, 3)
        dt = _float_dtype()
        return cls(
            scale * jax.random.normal(kw, (n_visible, n_hidden), dt),
            scale * jax.random.normal(ka, (n_visible,), dt),
            scale * jax.random.normal(kb, (n_hidden,), dt),
            units=units,
        )

    # ------------------------------------------------------------------ protocol

    @property
    def values(self) -> tuple[float, float]:
        """(0, 1) for binary units, (−1, 1) for spins."""
        return _UNITS[self.units]

    @property
    def n_visible(self) -> int:
        return self.W.shape[-2]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[-1]

    @property
    def dim(self) -> int:
        """n_visible + n_hidden."""
        return self.n_visible + self.n_hidden

    def split(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(v [..., n_v], h [..., n_h]) from x [..., n_v + n_h]."""
        return x[..., : self.n_visible], x[..., self.n_visible :]

    def energy(self, x: jax.Array) -> jax.Array:
        """E(x) = −a·v − b·h − vᵀWh for x = concat(v, h) [dim] -> []."""
        v, h = self.split(x)
        return -_dot(self.a, v) - _dot(self.b, h) - _dot(v, _matmul(self.W, h))

    def delta_energy_all(self, x: jax.Array) -> jax.Array:
        """ΔE of each single flip, [dim]: −(x'_i − x_i)·(field on unit i), fields a + Wh and b + Wᵀv."""
        v, h = self.split(x)
        lo, hi = self.values
        fields = jnp.concatenate([self.a + _matmul(self.W, h), self.b + _matmul(v, self.W)])
        return -(lo + hi - 2.0 * x) * fields

    def delta_energy(self, x: jax.Array, i: jax.Array) -> jax.Array:
        """ΔE of flipping unit i (visible for i < n_v, else hidden), O(n_v + n_h)."""
        v, h = self.split(x)
        n_v = self.n_visible
        iv = jnp.clip(i, 0, n_v - 1)
        ih = jnp.clip(i - n_v, 0, self.n_hidden - 1)
        field = jnp.where(i < n_v, self.a[iv] + _dot(self.W[iv], h), self.b[ih] + _dot(v, self.W[:, ih]))
        lo, hi = self.values
        return -(lo + hi - 2.0 * x[i]) * field

    def block_masks(self) -> jax.Array:
        """[2, dim] bool: the visible layer and the hidden layer (no intra-layer couplings)."""
        layer = np.arange(self.dim) >= self.n_visible
        return jnp.asarray(np.stack([~layer, layer]))

    def sample_reference(self, key: jax.Array) -> jax.Array:
        """A uniform random configuration of both layers (the β = 0 ensemble), [dim]."""
        lo, hi = self.values
        return jnp.where(jax.random.bernoulli(key, 0.5, (self.dim,)), hi, lo).astype(_float_dtype())

    def log_reference_partition(self) -> float:
        """log Z(0) = (n_v + n_h) log 2."""
        return log_reference_binary(self.dim)

    # ------------------------------------------------------------------ marginals

    def free_energy_visible(self, v: jax.Array, beta) -> jax.Array:
        """Visible free energy F(v) = −a·v − (1/β) Σ_j φ(β(b_j + (vW)_j)): Σ_h e^{−βE} = e^{−βF(v)}.

        Args:
            v: [..., n_v] visible configurations.
            beta: [] inverse temperature, > 0 (F is undefined at β = 0).

        Returns:
            [...] F(v).
        """
        beta = _as_beta(beta)
        return -_matmul(v, self.a) - jnp.sum(_log_unit_sum(beta * (self.b + _matmul(v, self.W)), self.units), -1) / beta

    def log_marginal_visible(self, v: jax.Array, beta, log_partition=None) -> jax.Array:
        """Normalised log p_β(v) = −β F(v) − log Z(β) (hidden layer summed out).

        Args:
            v: [..., n_v] visible configurations.
            beta: [] inverse temperature.
            log_partition: log Z(β) if already known; otherwise ``exact_log_partition(beta)`` is computed.

        Returns:
            [...] log p_β(v).
        """
        beta = _as_beta(beta)
        if log_partition is None:
            log_partition = self.exact_log_partition(beta)
        fields = self.b + _matmul(v, self.W)
        unnorm = beta * _matmul(v, self.a) + jnp.sum(_log_unit_sum(beta * fields, self.units), -1)
        return unnorm - log_partition

    # ------------------------------------------------------------------ exact

    @property
    def exact_log_partition(self):
        """``beta [...] -> [...]`` exact log Z(β), summing the larger layer out analytically and enumerating the
        smaller one (min(n_v, n_h) ≤ 20; absent otherwise, so ``has_exact`` is truthful). Jittable with traced β
        and weights; use ``jax.enable_x64(True)`` for reference values."""
        if min(self.n_visible, self.n_hidden) > MAX_EXACT_LAYER:
            raise ExactUnavailableError(
                f"RBM.exact_log_partition: both layers ({self.n_visible} visible, {self.n_hidden} hidden) exceed "
                f"{MAX_EXACT_LAYER} units; cannot enumerate"
            )

        def exact_log_partition(beta):
            return _exact_jit(self, _as_beta(beta))

        return exact_log_partition
