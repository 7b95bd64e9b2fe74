"""Per-lane streamed statistics of the equilibrium runner (``engine.equilibrium``).

A *lane* is one chain of one disorder sample at one temperature slot (and one copy). Its statistics are a
``ChainStats`` NamedTuple of constant-size accumulators (``engine.observables``) updated once per production step
inside ``lax.scan`` — memory never grows with the run length — and ``vmap``-ed over the lanes
``[D, T, A, C]`` (disorder, temperature slot, copy, chain).

Replica-exchange bookkeeping lives in the same per-lane layout (``Exchange``): a lane's swap counters describe the
pair (slot k, slot k+1) of its system, its round-trip counter only ever moves at slot 0, and ``labels`` /
``direction`` describe the replica currently sitting in the lane.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import observables as obs

__all__ = ["ChainStats", "Exchange", "StatsSpec", "stats_init", "stats_update", "exchange_init", "UP", "DOWN",
           "UNKNOWN"]

UP, DOWN, UNKNOWN = 0, 1, -1
"""Replica direction: the last extreme slot it visited was β_min (UP) or β_max (DOWN); UNKNOWN before either."""


class StatsSpec(NamedTuple):
    """Static description of what a lane streams (hashable: part of the compiled program's key).

    Fields:
        observables: ((name, fn), ...) user observables fn(x [dim]) -> array.
        has_magnetization: stream (m, |m|, m², m⁴) from ``model.magnetization(x)``.
        n_draws: thinned trace length (0: no traces); ``trace_every``: thinning.
        overlap_bins: bins of the P(q) histogram on [−1, 1] between copies 0 and 1 (0: none).
    """

    observables: tuple
    has_magnetization: bool
    n_draws: int
    trace_every: int
    overlap_bins: int


class ChainStats(NamedTuple):
    """Streamed statistics of one lane.

    Fields:
        energy: ``SplitMoments`` [] of E over production (split halves for R-hat).
        magnetization: ``SplitMoments`` [4] of (m, |m|, m², m⁴), or None.
        user: {name: ``SplitMoments``} of the user observables.
        acceptance: ``Moments`` [] of the kernel's acceptance probability.
        n_divergent: int32 [] divergent kernel steps.
        nonfinite: bool [] the energy was NaN/inf at some production step (the lane is excluded downstream).
        bridge_down: ``LogMeanExp`` [] of −(β_{k+1} − β_k)/2 · E (slot k's half of the bridge to slot k+1).
        bridge_up: ``LogMeanExp`` [] of +(β_k − β_{k−1})/2 · E (slot k's half of the bridge from slot k−1).
        overlap: ``Histogram`` of q = x⁽⁰⁾·x⁽¹⁾/dim (filled at copy 0 only), or None.
        traces: {name: [n_draws, ...]} thinned traces (empty without ``trace_every``).
    """

    energy: obs.SplitMoments
    magnetization: Any
    user: dict
    acceptance: obs.Moments
    n_divergent: jax.Array
    nonfinite: jax.Array
    bridge_down: obs.LogMeanExp
    bridge_up: obs.LogMeanExp
    overlap: Any
    traces: dict


class Exchange(NamedTuple):
    """Replica-exchange state and counters of one lane (all int32/float [], per lane).

    Fields:
        labels: which replica (its initial slot) sits in this lane.
        direction: UP / DOWN / UNKNOWN of the replica sitting here (moves with it).
        swap_acc: Σ acceptance probability of proposed swaps of pair (k, k+1) (slot k's lane; last slot unused).
        swap_n: number of proposals of that pair.
        round_trips: completed β_min → β_max → β_min trips counted on arrival at slot 0 (0 elsewhere).
    """

    labels: jax.Array
    direction: jax.Array
    swap_acc: jax.Array
    swap_n: jax.Array
    round_trips: jax.Array


def stats_init(spec: StatsSpec, position: jax.Array, energy: jax.Array) -> ChainStats:
    """Empty statistics of one lane (shapes from one position [dim] and its energy [])."""
    dt = energy.dtype
    mag = obs.split_moments_init((4,), dt) if spec.has_magnetization else None
    user, traces = {}, {}
    for name, fn in spec.observables:
        shape = jax.eval_shape(fn, position).shape
        user[name] = obs.split_moments_init(shape, dt)
        if spec.n_draws:
            traces[name] = jnp.zeros((spec.n_draws,) + shape, dt)
    if spec.n_draws:
        traces["energy"] = jnp.zeros((spec.n_draws,), dt)
        if spec.has_magnetization:
            traces["magnetization"] = jnp.zeros((spec.n_draws,), dt)
    hist = obs.histogram_init(spec.overlap_bins, -1.0, 1.0, dt) if spec.overlap_bins else None
    return ChainStats(obs.split_moments_init((), dt), mag, user, obs.moments_init((), dt),
                      jnp.zeros((), jnp.int32), jnp.zeros((), bool), obs.log_mean_exp_init((), dt),
                      obs.log_mean_exp_init((), dt), hist, traces)


def stats_update(spec: StatsSpec, model, stats: ChainStats, position, energy, info, half_down, half_up, q,
                 is_copy0, tp, n_prod) -> ChainStats:
    """One production step of one lane.

    Args:
        position [dim], energy []: the lane's state after the step (and after any swap).
        info: the kernel's Info (acceptance_probability, is_divergent).
        half_down, half_up: (β_{k+1} − β_k)/2 and (β_k − β_{k−1})/2 of the lane's slot (0 where undefined).
        q: overlap with the other copy (ignored without ``overlap_bins``); is_copy0: bool, this is copy 0.
        tp: production step index (traced); n_prod: production steps (traced), for the split halves.
    """
    e = energy
    vals = {"energy": e}
    mag = stats.magnetization
    if spec.has_magnetization:
        m = model.magnetization(position)
        vals["magnetization"] = m
        mag = obs.split_moments_update(mag, jnp.stack([m, jnp.abs(m), m**2, m**4]).astype(e.dtype), tp, n_prod)
    user = {}
    for name, fn in spec.observables:
        v = fn(position)
        vals[name] = v
        user[name] = obs.split_moments_update(stats.user[name], v, tp, n_prod)
    traces = stats.traces
    if spec.n_draws:
        record = (tp + 1) % spec.trace_every == 0
        idx = jnp.clip((tp + 1) // spec.trace_every - 1, 0, spec.n_draws - 1)
        traces = {k: buf.at[idx].set(jnp.where(record, jnp.asarray(vals[k], buf.dtype), buf[idx]))
                  for k, buf in stats.traces.items()}
    hist = stats.overlap
    if spec.overlap_bins:
        hist = obs.histogram_update(hist, q, is_copy0)
    return ChainStats(
        obs.split_moments_update(stats.energy, e, tp, n_prod), mag, user,
        obs.moments_update(stats.acceptance, info.acceptance_probability),
        stats.n_divergent + info.is_divergent.astype(jnp.int32),
        stats.nonfinite | ~jnp.isfinite(e),
        obs.log_mean_exp_update(stats.bridge_down, -half_down * e),
        obs.log_mean_exp_update(stats.bridge_up, half_up * e),
        hist, traces,
    )


def exchange_init(slot: jax.Array, n_slots: int, dtype) -> Exchange:
    """Exchange bookkeeping of the lane at ``slot`` (int []) before any swap."""
    direction = jnp.where(slot == 0, UP, UNKNOWN).astype(jnp.int32)
    zero = jnp.zeros((), dtype)
    return Exchange(jnp.asarray(slot, jnp.int32), direction, zero, zero, jnp.zeros((), jnp.int32))
