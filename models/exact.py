"""Exact thermodynamics of small discrete models by enumeration of all 2^dim states, and helpers shared by the
spin models (``ising``, ``sk``, ``rbm``, ``hopfield``).

Everything here is jittable with a traced β (scalar or any array shape [...]: one pass over the states serves a
whole β grid) and memory-bounded: states are generated chunk by chunk from their integer index inside a
``lax.scan`` (``chunk_size`` states at a time), log-weights are combined with a running log-sum-exp, and energy
moments with the pairwise update of Chan, Golub & LeVeque (1979), so ⟨E⟩ and Var(E) never suffer the
cancellation of ⟨E²⟩ − ⟨E⟩².

State order is that of ``models.base.enumerate_states``: state k has site i equal to ``hi`` when bit i of k is
set (site 0 is the least significant bit).

Precision: exact references must be computed in float64, i.e. inside ``jax.enable_x64(True)`` (and, for models
whose couplings are arrays, with those arrays built or cast there too); in float32 log Z carries relative errors
of order 1e-7·dim.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .base import DISCRETE

__all__ = [
    "MAX_ENUMERATION_DIM",
    "ExactObservables",
    "ExactUnavailableError",
    "enumerate_log_sum",
    "enumerate_energies",
    "enumerate_log_partition",
    "enumerate_observables",
    "enumerate_expectation",
    "exact_thermodynamics",
    "ising_critical_beta",
]

MAX_ENUMERATION_DIM = 24
_DEFAULT_CHUNK = 2**12
_MAX_PROBABILITY_DIM = 20


class ExactUnavailableError(AttributeError, ValueError):
    """Raised when a model has no exact log Z for its size or parameters.

    It is an ``AttributeError`` so that ``getattr(model, "exact_log_partition", None)`` (``models.base.has_exact``)
    reports the method as absent, and a ``ValueError`` so that callers treat it as bad input.
    """


class ExactObservables(NamedTuple):
    """Exact equilibrium quantities at inverse temperature β (shapes ``[...]`` = the shape of β).

    Fields:
        log_partition: log Z(β) (counting measure over the 2^dim states).
        energy: U = ⟨E⟩_β.
        energy_variance: Var_β(E) = −dU/dβ.
        specific_heat: C = β² Var_β(E) (total, not per site; k_B = 1).
        entropy: S = log Z + β U.
        probabilities: [..., 2^dim] Boltzmann probabilities in ``enumerate_states`` order, or ``None``.
    """

    log_partition: jax.Array
    energy: jax.Array
    energy_variance: jax.Array
    specific_heat: jax.Array
    entropy: jax.Array
    probabilities: jax.Array | None


# ----------------------------------------------------------------------------------------------- helpers


# Full float32 precision in matrix products: on GPUs the default may use TF32 (~1e-3 relative error), which would
# bias Metropolis ratios and exact references.
_matmul = partial(jnp.matmul, precision=lax.Precision.HIGHEST)
_dot = partial(jnp.dot, precision=lax.Precision.HIGHEST)


def _float_dtype():
    """The default float dtype: float64 inside ``jax.enable_x64(True)``, else float32."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _as_beta(beta) -> jax.Array:
    """β as a float array of the default precision (float64 under x64, whatever β's own dtype)."""
    beta = jnp.asarray(beta)
    return beta.astype(jnp.promote_types(beta.dtype, _float_dtype()))


def _concrete(x) -> np.ndarray | None:
    """``x`` as a float64 NumPy array when its value is known now (not a tracer, numeric), else ``None``."""
    if x is None or isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _check_enumerable(n: int, name: str) -> None:
    if not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"{name}: number of binary sites must be a positive integer, got {n!r}")
    if n > MAX_ENUMERATION_DIM:
        raise ValueError(f"{name}: 2**{n} states is too many to enumerate (limit 2**{MAX_ENUMERATION_DIM})")


def _chunking(n: int, chunk_size: int | None, name: str) -> tuple[int, int]:
    """(states per chunk, number of chunks) for 2**n states; chunk_size must be a power of two."""
    chunk_size = _DEFAULT_CHUNK if chunk_size is None else chunk_size
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size <= 0 or chunk_size & (chunk_size - 1):
        raise ValueError(f"{name}: chunk_size must be a positive power of two, got {chunk_size!r}")
    chunk = min(2**n, int(chunk_size))
    return chunk, 2**n // chunk


def _chunk_states(start, chunk: int, n: int, values, dtype) -> jax.Array:
    """States ``start .. start+chunk-1`` in ``enumerate_states`` order, shape [chunk, n]."""
    k = start + jnp.arange(chunk, dtype=jnp.int32)
    bits = (k[:, None] >> jnp.arange(n, dtype=jnp.int32)[None, :]) & 1
    lo, hi = values
    return jnp.where(bits == 1, jnp.asarray(hi, dtype), jnp.asarray(lo, dtype))


def _check_model(model: Any, name: str) -> int:
    if getattr(model, "kind", None) != DISCRETE:
        raise ValueError(f"{name}: needs a discrete model (kind='discrete'), got kind={getattr(model, 'kind', None)!r}")
    n = model.dim
    _check_enumerable(n, name)
    return n


def _safe_weights(lw: jax.Array, axis: int = -1):
    """log Σ exp(lw) and normalised weights along ``axis``; an all −∞ slice gives (−∞, zeros), not NaN."""
    lz = jax.nn.logsumexp(lw, axis=axis)
    lz_finite = jnp.where(jnp.isfinite(lz), lz, 0.0)
    p = jnp.where(jnp.isfinite(lz)[..., None], jnp.exp(lw - jnp.expand_dims(lz_finite, axis)), 0.0)
    return lz, p


def _merge_fractions(la, lb):
    """Shares of two groups with log-weights la, lb in their union (0/0 -> 0)."""
    l = jnp.logaddexp(la, lb)
    lf = jnp.where(jnp.isfinite(l), l, 0.0)
    fa = jnp.where(la == -jnp.inf, 0.0, jnp.exp(la - lf))
    fb = jnp.where(lb == -jnp.inf, 0.0, jnp.exp(lb - lf))
    return l, fa, fb


def _neg_beta_energy(beta, energies):
    """−β E with the convention 0·E = 0 at β = 0 (so β = 0 counts states even where E = ±∞)."""
    b = beta[..., None]
    return jnp.where(b == 0, 0.0, -b * energies)


# ---------------------------------------------------------------------------------------------- enumeration


def enumerate_log_sum(
    log_weight_fn: Callable[[jax.Array], jax.Array],
    n: int,
    values: tuple[float, float] = (-1.0, 1.0),
    chunk_size: int | None = None,
    dtype=None,
) -> jax.Array:
    """log Σ_s exp(log_weight_fn(s)) over all 2^n binary states s, chunk by chunk.

    The building block of every exact sum here (e.g. the RBM sums its larger layer out analytically in
    ``log_weight_fn`` and enumerates the smaller one with this).

    Args:
        log_weight_fn: ``states [chunk, n] -> [..., chunk]`` log-weights (any fixed leading shape [...]).
        n: number of binary sites (1 ≤ n ≤ 24).
        values: the two site values (lo, hi).
        chunk_size: states per chunk, a power of two (default 4096); memory is O(chunk_size · n).
        dtype: dtype of the generated states (default float64 under x64, else float32).

    Returns:
        [...] the log-sum-exp over all states.
    """
    _check_enumerable(n, "enumerate_log_sum")
    chunk, n_chunks = _chunking(n, chunk_size, "enumerate_log_sum")
    dtype = _float_dtype() if dtype is None else dtype

    def chunk_lse(c):
        lw = log_weight_fn(_chunk_states(c * chunk, chunk, n, values, dtype))
        return jax.nn.logsumexp(lw, axis=-1)

    shape = jax.eval_shape(chunk_lse, jnp.int32(0))

    def body(acc, c):
        return jnp.logaddexp(acc, chunk_lse(c)), None

    acc0 = jnp.full(shape.shape, -jnp.inf, shape.dtype)
    acc, _ = lax.scan(body, acc0, jnp.arange(n_chunks, dtype=jnp.int32))
    return acc


@partial(jax.jit, static_argnames=("chunk_size",))
def _energies_jit(model, chunk_size):
    n = model.dim
    chunk, n_chunks = _chunking(n, chunk_size, "enumerate_energies")
    dtype = _float_dtype()

    def chunk_energies(c):
        states = _chunk_states(c * chunk, chunk, n, model.values, dtype)
        return jax.vmap(model.energy)(states).astype(dtype)

    return lax.map(chunk_energies, jnp.arange(n_chunks, dtype=jnp.int32)).reshape(-1)


def enumerate_energies(model: Any, chunk_size: int | None = None) -> jax.Array:
    """E(s) of every state of a discrete model, in ``enumerate_states`` order.

    Args:
        model: a discrete model (``kind == "discrete"``, ``dim ≤ 24``, ``values``, ``energy``).
        chunk_size: states evaluated per chunk (power of two, default 4096).

    Returns:
        [2^dim] energies (float64 under x64).
    """
    _check_model(model, "enumerate_energies")
    _chunking(model.dim, chunk_size, "enumerate_energies")
    return _energies_jit(model, chunk_size)


@partial(jax.jit, static_argnames=("chunk_size", "return_probabilities"))
def _observables_jit(model, beta, chunk_size, return_probabilities):
    n = model.dim
    chunk, n_chunks = _chunking(n, chunk_size, "enumerate_observables")
    dtype = beta.dtype

    def chunk_stats(c):
        states = _chunk_states(c * chunk, chunk, n, model.values, dtype)
        e = jax.vmap(model.energy)(states).astype(dtype)  # [chunk]
        lz, p = _safe_weights(_neg_beta_energy(beta, e))  # [...], [..., chunk]
        e = jnp.where(p > 0, e, 0.0)  # 0·∞ = 0 for states of zero weight
        mean = jnp.sum(p * e, axis=-1)
        var = jnp.sum(p * (e - mean[..., None]) ** 2, axis=-1)
        return lz, mean, var

    def body(acc, c):
        la, ma, va = acc
        lb, mb, vb = chunk_stats(c)
        l, fa, fb = _merge_fractions(la, lb)  # Chan-Golub-LeVeque pairwise update of mean and variance
        return (l, fa * ma + fb * mb, fa * va + fb * vb + fa * fb * (ma - mb) ** 2), None

    zeros = jnp.zeros(beta.shape, dtype)
    init = (jnp.full(beta.shape, -jnp.inf, dtype), zeros, zeros)
    (lz, u, var), _ = lax.scan(body, init, jnp.arange(n_chunks, dtype=jnp.int32))
    probs = None
    if return_probabilities:
        e_all = _energies_jit(model, chunk_size).astype(dtype)
        probs = jnp.exp(_neg_beta_energy(beta, e_all) - lz[..., None])
    entropy = lz + jnp.where(beta == 0, 0.0, beta * u)
    return ExactObservables(lz, u, var, beta**2 * var, entropy, probs)


def enumerate_observables(
    model: Any,
    beta,
    chunk_size: int | None = None,
    return_probabilities: bool | None = None,
) -> ExactObservables:
    """Exact log Z, U, Var(E), C = β²Var(E), S and (optionally) all Boltzmann probabilities, by enumeration.

    Powers the ``method="exact"`` estimator and the exact-distribution tests. Jittable; β may be traced and of any
    shape [...] (all β share one pass over the states). Compute references under ``jax.enable_x64(True)``.

    Args:
        model: a discrete model with ``dim ≤ 24`` (``kind``, ``dim``, ``values``, ``energy``).
        beta: [...] inverse temperature(s).
        chunk_size: states per chunk (power of two, default 4096); memory O(chunk_size·dim + |β|·chunk_size).
        return_probabilities: also return p_β(s) for all states, [..., 2^dim] (default: only when dim ≤ 16;
            at most dim ≤ 20).

    Returns:
        ``ExactObservables`` with fields of shape [...] (probabilities [..., 2^dim] or ``None``).
    """
    n = _check_model(model, "enumerate_observables")
    _chunking(n, chunk_size, "enumerate_observables")
    if return_probabilities is None:
        return_probabilities = n <= 16
    if return_probabilities and n > _MAX_PROBABILITY_DIM:
        raise ValueError(
            f"enumerate_observables: return_probabilities needs dim ≤ {_MAX_PROBABILITY_DIM}, got dim={n}"
        )
    return _observables_jit(model, _as_beta(beta), chunk_size, bool(return_probabilities))


def enumerate_log_partition(model: Any, beta, chunk_size: int | None = None) -> jax.Array:
    """Exact log Z(β) = log Σ_s exp(−β E(s)) of ANY discrete model by chunked enumeration of its 2^dim states.

    Jittable with traced β of any shape [...]; memory is bounded by the chunk size, time is O(2^dim ·
    cost(energy)). Compute references under ``jax.enable_x64(True)``.

    Args:
        model: a discrete model with ``dim ≤ 24``.
        beta: [...] inverse temperature(s).
        chunk_size: states per chunk (power of two, default 4096).

    Returns:
        [...] log Z(β).
    """
    return enumerate_observables(model, beta, chunk_size, return_probabilities=False).log_partition


@partial(jax.jit, static_argnames=("observable_fn", "chunk_size"))
def _expectation_jit(model, beta, observable_fn, chunk_size):
    n = model.dim
    chunk, n_chunks = _chunking(n, chunk_size, "enumerate_expectation")
    dtype = beta.dtype

    def chunk_stats(c):
        states = _chunk_states(c * chunk, chunk, n, model.values, dtype)
        e = jax.vmap(model.energy)(states).astype(dtype)
        lz, p = _safe_weights(_neg_beta_energy(beta, e))
        obs = jax.vmap(observable_fn)(states)
        def weighted_mean(f):  # Σ_k p[..., k] f[k, ...]
            return jnp.tensordot(p, jnp.asarray(f, dtype), axes=([-1], [0]), precision=lax.Precision.HIGHEST)

        means = jax.tree.map(weighted_mean, obs)
        return lz, means

    def body(acc, c):
        la, ma = acc
        lb, mb = chunk_stats(c)
        l, fa, fb = _merge_fractions(la, lb)

        def mix(a, b):
            pad = (1,) * (a.ndim - fa.ndim)
            return fa.reshape(fa.shape + pad) * a + fb.reshape(fb.shape + pad) * b

        return (l, jax.tree.map(mix, ma, mb)), None

    shapes = jax.eval_shape(chunk_stats, jnp.int32(0))
    init = (jnp.full(beta.shape, -jnp.inf, dtype), jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes[1]))
    (_, means), _ = lax.scan(body, init, jnp.arange(n_chunks, dtype=jnp.int32))
    return means


def enumerate_expectation(model: Any, beta, observable_fn: Callable, chunk_size: int | None = None):
    """Exact Boltzmann average ⟨f(s)⟩_β of any observable by enumeration (e.g. magnetisation moments).

    Args:
        model: a discrete model with ``dim ≤ 24``.
        beta: [...] inverse temperature(s), may be traced.
        observable_fn: ``x [dim] -> pytree of arrays`` (static: pass the same function object to avoid
            recompiling).
        chunk_size: states per chunk (power of two, default 4096).

    Returns:
        The pytree of ⟨f⟩_β, each leaf of shape [..., *leaf_shape].
    """
    n = _check_model(model, "enumerate_expectation")
    _chunking(n, chunk_size, "enumerate_expectation")
    if not callable(observable_fn):
        raise ValueError(f"enumerate_expectation: observable_fn must be callable, got {observable_fn!r}")
    return _expectation_jit(model, _as_beta(beta), observable_fn, chunk_size)


# ------------------------------------------------------------------------------------ closed-form helpers


def exact_thermodynamics(model: Any, beta) -> ExactObservables:
    """log Z, U = −∂_β log Z, Var(E) = ∂²_β log Z, C = β² Var(E) and S from a model's ``exact_log_partition``
    by forward-mode autodiff (e.g. Kaufman's closed form for ``Ising2D``, the summed-out RBM).

    Args:
        model: a model with ``exact_log_partition`` (see ``models.base.has_exact``).
        beta: [] inverse temperature (traced is fine; vmap for a grid).

    Returns:
        ``ExactObservables`` of shape [] with ``probabilities=None``.
    """
    f = getattr(model, "exact_log_partition", None)
    if not callable(f):
        raise ValueError(f"exact_thermodynamics: {type(model).__name__} has no exact_log_partition")
    beta = _as_beta(beta)
    if beta.ndim != 0:
        raise ValueError(f"exact_thermodynamics: beta must be a scalar (vmap for a grid), got shape {beta.shape}")

    def value_and_first(b):
        return jax.jvp(f, (b,), (jnp.ones_like(b),))

    (lz, d1), (_, d2) = jax.jvp(value_and_first, (beta,), (jnp.ones_like(beta),))
    u = -d1
    return ExactObservables(lz, u, d2, beta**2 * d2, lz + beta * u, None)


def ising_critical_beta(J: float = 1.0) -> float:
    """Inverse critical temperature of the square-lattice Ising model, β_c = ½ ln(1 + √2) / |J| (Onsager 1944;
    Kramers & Wannier 1941). The antiferromagnet (J < 0) on a bipartite lattice has the same |β_c|.

    Args:
        J: the coupling (nonzero, finite).

    Returns:
        β_c as a Python float (≈ 0.4406868 for |J| = 1).
    """
    J = float(J)
    if not math.isfinite(J) or J == 0.0:
        raise ValueError(f"ising_critical_beta: J must be finite and nonzero, got {J!r}")
    return 0.5 * math.log1p(math.sqrt(2.0)) / abs(J)
