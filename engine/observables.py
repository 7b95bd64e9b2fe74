"""Streaming observables: constant-memory accumulators updated inside ``lax.scan``.

Every accumulator is a ``NamedTuple`` of arrays with a pure ``*_init`` and ``*_update`` (and ``*_merge`` where
pooling makes sense), so it can live in a scan carry and be ``vmap``-ed over chains and temperatures. Memory does
not grow with the number of steps. Values may have any shape (elementwise statistics); counters are scalars per
accumulator (one chain's accumulator sees one value per step).

A NaN/inf value is *not* hidden: it propagates into the running mean of that chain, which the diagnostics then flag
and exclude (see ``engine.diagnostics``); never averaged silently.

References: B. P. Welford, Technometrics 4, 419 (1962) (running mean/variance); T. F. Chan, G. H. Golub,
R. J. LeVeque, "Algorithms for computing the sample variance", Am. Stat. 37, 242 (1983) (merging); K. Binder,
Z. Phys. B 43, 119 (1981) (cumulant).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "Moments",
    "moments_init",
    "moments_update",
    "moments_merge",
    "moments_variance",
    "SplitMoments",
    "split_moments_init",
    "split_moments_update",
    "split_moments_total",
    "LogMeanExp",
    "log_mean_exp_init",
    "log_mean_exp_update",
    "log_mean_exp_merge",
    "log_mean_exp_value",
    "Histogram",
    "histogram_init",
    "histogram_update",
    "histogram_merge",
    "histogram_density",
    "overlap",
    "binder_cumulant",
]


# ---------------------------------------------------------------------------------------------- Welford moments
class Moments(NamedTuple):
    """Running mean and variance (Welford).

    Fields:
        count: float [] — number of values seen.
        mean: float [...] — running mean.
        m2: float [...] — running sum of squared deviations from the mean (variance = m2 / (count − ddof)).
    """

    count: jax.Array
    mean: jax.Array
    m2: jax.Array


def moments_init(shape=(), dtype=jnp.float32) -> Moments:
    """Empty accumulator for values of ``shape``."""
    z = jnp.zeros(shape, dtype)
    return Moments(jnp.zeros((), dtype), z, z)


def moments_update(m: Moments, x: jax.Array, weight: jax.Array | None = None) -> Moments:
    """Add one value ``x`` (shape of ``m.mean``). ``weight`` ∈ {0, 1} (traced bool/float) skips the update if 0."""
    x = jnp.asarray(x, m.mean.dtype)
    w = jnp.ones((), m.count.dtype) if weight is None else jnp.asarray(weight, m.count.dtype)
    count = m.count + w
    safe = jnp.maximum(count, 1.0)
    delta = x - m.mean
    # w = 0 must leave the state untouched even when x is NaN: select, do not multiply.
    mean = jnp.where(w > 0, m.mean + delta / safe, m.mean)
    m2 = jnp.where(w > 0, m.m2 + delta * (x - mean), m.m2)
    return Moments(count, mean, m2)


def _expand(count: jax.Array, like: jax.Array) -> jax.Array:
    """Batched accumulators hold count [...batch] and mean [...batch, *value]: align count with the value axes."""
    count = jnp.asarray(count)
    return jnp.reshape(count, count.shape + (1,) * (jnp.ndim(like) - count.ndim))


def moments_merge(a: Moments, b: Moments) -> Moments:
    """Pool two accumulators (Chan, Golub & LeVeque). Works on batched accumulators too."""
    count = a.count + b.count
    na, nb, n = _expand(a.count, a.mean), _expand(b.count, a.mean), _expand(count, a.mean)
    safe = jnp.maximum(n, 1.0)
    delta = b.mean - a.mean
    mean = a.mean + delta * (nb / safe)
    m2 = a.m2 + b.m2 + delta**2 * (na * nb / safe)
    return Moments(count, mean, m2)


def moments_variance(m: Moments, ddof: int = 1) -> jax.Array:
    """Sample variance m2 / (count − ddof); NaN when count ≤ ddof. Works on batched accumulators too."""
    denom = _expand(m.count, m.mean) - ddof
    return jnp.where(denom > 0, m.m2 / jnp.where(denom > 0, denom, 1.0), jnp.nan)


# ------------------------------------------------------------------------------ halves, for split R-hat
class SplitMoments(NamedTuple):
    """Moments of the first and second half of a chain separately (split R-hat, Gelman et al. BDA3 §11.4).

    Fields:
        first: ``Moments`` of draws t < n_total // 2.
        second: ``Moments`` of the remaining draws.
    """

    first: Moments
    second: Moments


def split_moments_init(shape=(), dtype=jnp.float32) -> SplitMoments:
    """Empty split accumulator."""
    return SplitMoments(moments_init(shape, dtype), moments_init(shape, dtype))


def split_moments_update(s: SplitMoments, x: jax.Array, t: jax.Array, n_total: int) -> SplitMoments:
    """Add value ``x`` drawn at production step ``t`` (0-based, traced) of ``n_total`` (Python int)."""
    in_first = t < (n_total // 2)
    return SplitMoments(
        moments_update(s.first, x, in_first),
        moments_update(s.second, x, jnp.logical_not(in_first)),
    )


def split_moments_total(s: SplitMoments) -> Moments:
    """The moments of the whole chain."""
    return moments_merge(s.first, s.second)


# ------------------------------------------------------------------------------ running log-mean-exp
class LogMeanExp(NamedTuple):
    """Running log mean exp(x) and log mean exp(2x), in log space (bridge / stepping-stone terms).

    Fields:
        log_sum: float [...] — log Σ exp(x) (−inf when empty).
        log_sum_sq: float [...] — log Σ exp(2x), for the delta-method variance of the mean of exp(x).
        count: float [] — number of values seen.
    """

    log_sum: jax.Array
    log_sum_sq: jax.Array
    count: jax.Array


def log_mean_exp_init(shape=(), dtype=jnp.float32) -> LogMeanExp:
    """Empty accumulator."""
    ninf = jnp.full(shape, -jnp.inf, dtype)
    return LogMeanExp(ninf, ninf, jnp.zeros((), dtype))


def log_mean_exp_update(a: LogMeanExp, x: jax.Array, weight: jax.Array | None = None) -> LogMeanExp:
    """Add one value ``x``; ``weight`` ∈ {0, 1} skips the update if 0."""
    x = jnp.asarray(x, a.log_sum.dtype)
    w = jnp.ones((), a.count.dtype) if weight is None else jnp.asarray(weight, a.count.dtype)
    log_sum = jnp.where(w > 0, jnp.logaddexp(a.log_sum, x), a.log_sum)
    log_sum_sq = jnp.where(w > 0, jnp.logaddexp(a.log_sum_sq, 2.0 * x), a.log_sum_sq)
    return LogMeanExp(log_sum, log_sum_sq, a.count + w)


def log_mean_exp_merge(a: LogMeanExp, b: LogMeanExp) -> LogMeanExp:
    """Pool two accumulators."""
    return LogMeanExp(
        jnp.logaddexp(a.log_sum, b.log_sum), jnp.logaddexp(a.log_sum_sq, b.log_sum_sq), a.count + b.count
    )


def log_mean_exp_value(a: LogMeanExp) -> tuple[jax.Array, jax.Array]:
    """(log mean exp(x), its delta-method standard error assuming independent values).

    The standard error of log ȳ with y = e^x is sd(y) / (√n ȳ); with autocorrelated values treat it as a lower
    bound (use the chain-to-chain spread instead).
    """
    n = _expand(a.count, a.log_sum)
    log_mean = a.log_sum - jnp.log(n)
    # var(y)/ȳ² = (Σy²/n)/ȳ² − 1, computed in log space.
    rel_var = jnp.exp(a.log_sum_sq - jnp.log(n) - 2.0 * log_mean) - 1.0
    stderr = jnp.sqrt(jnp.maximum(rel_var, 0.0) * n / jnp.maximum(n - 1.0, 1.0) / n)
    return log_mean, stderr


# ---------------------------------------------------------------------------------------------- histograms
class Histogram(NamedTuple):
    """Fixed-bin histogram on [lo, hi] (e.g. P(q) on [−1, 1], P(m)).

    Fields:
        counts: int32 [n_bins] — counts per bin; bin k covers [lo + k·w, lo + (k+1)·w), the last bin includes hi.
        lo: float [] — lower edge.
        hi: float [] — upper edge.
        n_outside: int32 [] — values outside [lo, hi] or non-finite (not binned; counted so nothing is hidden).
    """

    counts: jax.Array
    lo: jax.Array
    hi: jax.Array
    n_outside: jax.Array


def histogram_init(n_bins: int, lo: float, hi: float, dtype=jnp.float32) -> Histogram:
    """Empty histogram with ``n_bins`` equal bins on [lo, hi]."""
    if int(n_bins) < 1:
        raise ValueError(f"histogram_init: n_bins must be positive, got {n_bins}")
    if not float(hi) > float(lo):
        raise ValueError(f"histogram_init: need hi > lo, got lo={lo}, hi={hi}")
    return Histogram(
        jnp.zeros((int(n_bins),), jnp.int32), jnp.asarray(lo, dtype), jnp.asarray(hi, dtype), jnp.zeros((), jnp.int32)
    )


def histogram_update(h: Histogram, x: jax.Array, weight: jax.Array | None = None) -> Histogram:
    """Add every element of ``x`` (any shape); ``weight`` ∈ {0, 1} skips the update if 0."""
    x = jnp.ravel(jnp.asarray(x, h.lo.dtype))
    n_bins = h.counts.shape[0]
    inside = jnp.isfinite(x) & (x >= h.lo) & (x <= h.hi)
    w = jnp.ones((), jnp.int32) if weight is None else jnp.asarray(weight, jnp.int32)
    frac = (jnp.where(inside, x, h.lo) - h.lo) / (h.hi - h.lo)
    idx = jnp.clip(jnp.floor(frac * n_bins).astype(jnp.int32), 0, n_bins - 1)
    counts = h.counts.at[idx].add(inside.astype(jnp.int32) * w)
    n_outside = h.n_outside + jnp.sum(~inside).astype(jnp.int32) * w
    return Histogram(counts, h.lo, h.hi, n_outside)


def histogram_merge(a: Histogram, b: Histogram) -> Histogram:
    """Pool two histograms with the same bins."""
    return Histogram(a.counts + b.counts, a.lo, a.hi, a.n_outside + b.n_outside)


def histogram_density(h: Histogram) -> tuple[jax.Array, jax.Array]:
    """(bin centres [n_bins], normalised density [n_bins]) — the density integrates to 1 over [lo, hi]."""
    n_bins = h.counts.shape[-1]
    width = (h.hi - h.lo) / n_bins
    centres = h.lo + width * (jnp.arange(n_bins) + 0.5)
    total = jnp.sum(h.counts, axis=-1, keepdims=True)
    return centres, h.counts / (jnp.maximum(total, 1) * width)


# ---------------------------------------------------------------------------------------------- physics
def overlap(xa: jax.Array, xb: jax.Array) -> jax.Array:
    """Replica overlap q = xa·xb / dim over the last axis (shapes ``[..., dim]`` -> ``[...]``)."""
    return jnp.sum(xa * xb, axis=-1) / xa.shape[-1]


def binder_cumulant(m2: jax.Array, m4: jax.Array) -> jax.Array:
    """Binder cumulant U₄ = 1 − ⟨m⁴⟩ / (3⟨m²⟩²) from the moments ⟨m²⟩ and ⟨m⁴⟩ (Binder 1981)."""
    return 1.0 - m4 / (3.0 * m2**2)
