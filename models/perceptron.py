"""Perceptrons with an error-counting energy: the Gardner problem in the binary and spherical weight spaces.

Stability of pattern μ: Δ_μ(w) = y_μ w·x_μ/√N. The energy is the number of training errors,
E(w) = Σ_μ Θ(κ − Δ_μ) with Δ_μ = κ counted as an **error** (so with κ = 0 a pattern with w·x_μ = 0 is an error;
for ±1 patterns and odd N this never happens). At β → ∞ the Gibbs measure is uniform on the version space
(the solutions, E = 0) and log Z(β → ∞) = log #solutions (binary) or log of its volume fraction (spherical).

References: E. Gardner, J. Phys. A 21, 257 (1988) (spherical, capacity α_c(κ)); E. Gardner & B. Derrida,
J. Phys. A 21, 271 (1988) and W. Krauth & M. Mézard, J. Phys. France 50, 3057 (1989) (binary, α_c ≈ 0.833).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .base import CONTINUOUS, DISCRETE, enumerate_states, log_reference_binary
from .priors import sample_sphere

__all__ = ["BinaryPerceptron", "SphericalPerceptron", "gardner_capacity", "MAX_ENUMERATION_DIM"]

MAX_ENUMERATION_DIM = 24


def _perceptron_data(X, y, kappa, name: str):
    """Validate (X [P, N], y [P] ±1 or 0/1, κ) and return jax arrays (X, ±1 y, κ)."""
    X_np, y_np = np.asarray(X), np.asarray(y)
    if X_np.ndim != 2 or X_np.shape[0] < 1 or X_np.shape[1] < 1:
        raise ValueError(f"{name}: X must have shape [P, N] with P, N ≥ 1, got {X_np.shape}")
    if not np.all(np.isfinite(X_np)):
        raise ValueError(f"{name}: X contains NaN or inf")
    y_np = y_np.reshape(-1) if y_np.ndim == 2 and y_np.shape[1] == 1 else y_np
    if y_np.shape != (X_np.shape[0],):
        raise ValueError(f"{name}: y has shape {np.shape(y)} but X has {X_np.shape[0]} patterns")
    values = set(np.unique(y_np).tolist())
    if values <= {-1.0, 1.0}:
        pm = y_np.astype(np.float64)
    elif values <= {0.0, 1.0}:
        pm = 2.0 * y_np.astype(np.float64) - 1.0
    else:
        raise ValueError(f"{name}: y must hold binary labels (±1 or 0/1), got values {sorted(values)[:5]}")
    kappa = float(kappa)
    if not math.isfinite(kappa):
        raise ValueError(f"{name}: kappa must be finite, got {kappa}")
    X_j = jnp.asarray(X_np) if np.issubdtype(X_np.dtype, np.floating) else jnp.asarray(X_np.astype(np.float64))
    return X_j, jnp.asarray(pm, dtype=X_j.dtype), jnp.asarray(kappa, dtype=X_j.dtype)


def _validated_pytree(*data_fields: str, static: tuple[str, ...] = ()):
    """Register a class with a validating ``__init__`` as a pytree whose leaves are ``data_fields`` and whose
    ``static`` attributes (hashable) are pytree metadata.

    ``jax.tree.unflatten`` (jit, vmap, ``stack_models``) rebuilds instances WITHOUT calling ``__init__``, so the
    constructor can check and canonicalise host data while traced / stacked leaves pass through untouched
    (a ``flax.struct.dataclass`` would re-run ``__init__`` on tracers). ``replace(**fields)`` returns a copy
    with new leaves (not re-validated). Instances are immutable.
    """

    def wrap(cls):
        def flatten_with_keys(m):
            aux = tuple(getattr(m, f) for f in static)
            return [(jax.tree_util.GetAttrKey(f), getattr(m, f)) for f in data_fields], aux

        def flatten(m):
            return [getattr(m, f) for f in data_fields], tuple(getattr(m, f) for f in static)

        def unflatten(aux, children):
            obj = object.__new__(cls)
            for f, v in zip(data_fields + static, tuple(children) + tuple(aux)):
                object.__setattr__(obj, f, v)
            return obj

        def replace(self, **updates):
            bad = set(updates) - set(data_fields)
            if bad:
                raise ValueError(f"{cls.__name__}.replace: unknown or static field(s) {sorted(bad)}")
            aux = tuple(getattr(self, f) for f in static)
            return unflatten(aux, [updates.get(f, getattr(self, f)) for f in data_fields])

        def frozen(self, name, value):
            raise AttributeError(f"{cls.__name__} is immutable; use .replace({name}=...)")

        def rep(self):
            shapes = ", ".join(f"{f}={getattr(getattr(self, f), 'shape', getattr(self, f))}"
                               for f in data_fields + static)
            return f"{cls.__name__}({shapes})"

        jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
        cls.replace, cls.__setattr__, cls.__repr__ = replace, frozen, rep
        cls._fields = data_fields + static
        return cls

    return wrap


def _count_errors(u: jax.Array, threshold, dtype) -> jax.Array:
    """Σ Θ(threshold − u) as ``dtype``; NaN when any field is NaN, so a broken chain is flagged instead of
    looking like a perfect solution (``NaN <= t`` is False)."""
    count = jnp.sum(u <= threshold).astype(dtype)
    return jnp.where(jnp.any(jnp.isnan(u)), jnp.asarray(jnp.nan, dtype), count)


class _PerceptronMethods:
    """Shared by both perceptrons (fields X [P, N], y [P], kappa [])."""

    @property
    def dim(self) -> int:
        return self.X.shape[-1]  # [-1]/[-2] so a stacked (disorder-axis) model reports N and P too

    @property
    def n_data(self) -> int:
        return self.X.shape[-2]

    def _threshold(self):
        # Error iff y w·x ≤ κ√N (the unscaled field keeps ±1 data integer-exact).
        return self.kappa * math.sqrt(self.dim)

    def stabilities(self, w: jax.Array) -> jax.Array:
        """Δ_μ = y_μ w·x_μ/√N, ``[P]``."""
        return self.y * (self.X @ w) / math.sqrt(self.dim)

    def energy(self, w: jax.Array) -> jax.Array:
        """Number of training errors Σ_μ Θ(κ − Δ_μ) (Δ_μ = κ counts), ``[]``."""
        u = self.y * (self.X @ w)
        return _count_errors(u, self._threshold(), self.X.dtype)

    def energy_minibatch(self, w: jax.Array, idx: jax.Array) -> jax.Array:
        """Unbiased (P/B) Σ_{μ∈idx} errors from ``[B]`` example indices."""
        u = self.y[idx] * (self.X[idx] @ w)
        return _count_errors(u, self._threshold(), self.X.dtype) * (self.n_data / idx.shape[0])


@_validated_pytree("X", "y", "kappa")
class BinaryPerceptron(_PerceptronMethods):
    """The binary perceptron: w ∈ {−1, +1}^N, E(w) = number of training errors (counting measure).

    Flip energies cost O(P) from the fields u_μ = y_μ w·x_μ: flipping w_i maps u_μ → u_μ − 2 w_i y_μ X_μi.
    ``exact_log_partition`` enumerates all 2^N weight vectors (N ≤ 24).

    Args:
      X: patterns ``[P, N]`` (no NaN/inf; ±1 Gardner patterns or real-valued).
      y: labels ``[P]`` (±1, or 0/1 mapped to ±1).
      kappa: margin κ (a traced leaf; default 0).

    Leaves: ``X [P, N]``, ``y [P]`` ±1 floats, ``kappa []``.
    """

    kind = DISCRETE
    values = (-1.0, 1.0)

    def __init__(self, X, y, kappa: float = 0.0):
        for f, v in zip(self._fields, _perceptron_data(X, y, kappa, "BinaryPerceptron")):
            object.__setattr__(self, f, v)

    def sample_reference(self, key: jax.Array) -> jax.Array:
        """Uniform ±1 weights ``[N]``."""
        return jax.random.rademacher(key, (self.dim,), dtype=self.X.dtype)

    def log_reference_partition(self) -> float:
        """log Z(0) = N log 2."""
        return log_reference_binary(self.dim)

    def delta_energy(self, w: jax.Array, i: jax.Array) -> jax.Array:
        """E(w with w_i flipped) − E(w), ``[]``."""
        u = self.y * (self.X @ w)
        u_new = u - 2.0 * w[i] * self.y * self.X[:, i]
        t = self._threshold()
        return (jnp.sum(u_new <= t) - jnp.sum(u <= t)).astype(self.X.dtype)

    def delta_energy_all(self, w: jax.Array) -> jax.Array:
        """Flip energies of all N weights, each flipped alone, ``[N]`` (O(N·P))."""
        yX = self.y[:, None] * self.X
        u = yX @ w
        u_new = u[None, :] - 2.0 * w[:, None] * yX.T  # [N, P]
        t = self._threshold()
        return (jnp.sum(u_new <= t, axis=1) - jnp.sum(u <= t)).astype(self.X.dtype)

    def energy_counts(self) -> jax.Array:
        """Exact number of weight vectors with E errors, for E = 0..P: ``[P + 1]`` int32 (sums to 2^N).

        Enumerates the 2^N vectors as (low 12 sites) × (high sites): the fields of the low half are computed
        once, the high half is scanned, so the cost is O(2^N · P) (N ≤ 24).
        """
        n, p = self.dim, self.n_data
        if n > MAX_ENUMERATION_DIM:
            raise ValueError(f"BinaryPerceptron: N = {n} is too large to enumerate (limit {MAX_ENUMERATION_DIM})")
        yX = self.y[:, None] * self.X
        t = self._threshold()
        c = min(n, 12)
        lo = enumerate_states(c, dtype=self.X.dtype)  # [2^c, c], site 0 = lowest bit
        fields_lo = lo @ yX[:, :c].T  # [2^c, P]
        zeros = jnp.zeros(p + 1, jnp.int32)
        if n == c:
            return zeros.at[jnp.sum(fields_lo <= t, axis=1)].add(1)
        h = n - c
        yX_hi = yX[:, c:]

        def body(counts, j):
            w_hi = jnp.where((j >> jnp.arange(h)) & 1, 1.0, -1.0).astype(self.X.dtype)
            errors = jnp.sum(fields_lo + (yX_hi @ w_hi)[None, :] <= t, axis=1)  # [2^c]
            return counts.at[errors].add(1), None

        counts, _ = jax.lax.scan(body, zeros, jnp.arange(2**h, dtype=jnp.int32))
        return counts

    def count_solutions(self) -> jax.Array:
        """Exact number of ±1 weight vectors with zero training errors, ``[]`` int32."""
        return self.energy_counts()[0]

    def _log_weights(self, beta):
        """log[n(E) e^{−βE}] ``[..., P + 1]`` (−inf where n(E) = 0) and the energies E = 0..P."""
        counts = self.energy_counts().astype(self.X.dtype)
        e = jnp.arange(self.n_data + 1, dtype=self.X.dtype)
        beta = jnp.asarray(beta, self.X.dtype)[..., None]
        log_n = jnp.where(counts > 0, jnp.log(jnp.where(counts > 0, counts, 1.0)), -jnp.inf)
        return log_n - beta * e, e

    def exact_log_partition(self, beta) -> jax.Array:
        """log Z(β) = log Σ_w exp(−β E(w)) by enumeration (N ≤ 24), shape of ``beta``; log Z(∞) = log #solutions."""
        logw, _ = self._log_weights(beta)
        return jax.nn.logsumexp(logw, axis=-1)

    def exact_mean_energy(self, beta) -> jax.Array:
        """⟨E⟩_β by enumeration (N ≤ 24), shape of ``beta``."""
        logw, e = self._log_weights(beta)
        return jnp.sum(jax.nn.softmax(logw, axis=-1) * e, axis=-1)


@_validated_pytree("X", "y", "kappa")
class SphericalPerceptron(_PerceptronMethods):
    """The spherical perceptron: w uniform on |w|² = N, E(w) = number of errors at margin κ.

    Continuous, ``manifold="sphere"``, not differentiable (piecewise-constant energy).

    Args:
      X: patterns ``[P, N]`` (no NaN/inf).
      y: labels ``[P]`` (±1, or 0/1 mapped to ±1).
      kappa: margin κ (a traced leaf; default 0).
    """

    kind = CONTINUOUS
    manifold = "sphere"
    differentiable = False

    def __init__(self, X, y, kappa: float = 0.0):
        for f, v in zip(self._fields, _perceptron_data(X, y, kappa, "SphericalPerceptron")):
            object.__setattr__(self, f, v)

    def log_prior(self, w: jax.Array) -> jax.Array:
        """0: the prior is the normalised uniform measure on the sphere."""
        return jnp.zeros((), w.dtype)

    def sample_reference(self, key: jax.Array) -> jax.Array:
        """Uniform draw ``[N]`` on |w|² = N."""
        return sample_sphere(key, self.dim, self.X.dtype)

    def log_reference_partition(self) -> float:
        """log Z(0) = 0 (normalised prior)."""
        return 0.0


def gardner_capacity(kappa: float = 0.0) -> float:
    """Gardner's storage capacity of the spherical perceptron at margin κ (replica symmetric, N → ∞):
    α_c(κ) = [∫_{−κ}^∞ Dt (t + κ)²]^{−1} with Dt the standard Gaussian measure (Gardner 1988); α_c(0) = 2."""
    from scipy import integrate, stats

    kappa = float(kappa)
    if not math.isfinite(kappa):
        raise ValueError(f"gardner_capacity: kappa must be finite, got {kappa}")
    val, _ = integrate.quad(lambda t: stats.norm.pdf(t) * (t + kappa) ** 2, -kappa, np.inf)
    return 1.0 / val
