"""The ONE equilibrium runner: many chains at many fixed temperatures, optionally with replica exchange.

Lanes ``[D, T, A, C]`` — disorder sample (a stack of models, ``models.stack_models``), temperature slot, copy
(two copies of one system give replica overlaps) and chain — each run one kernel (``engine.kernel_binding``). One
jitted *chunk* program runs ``chunk_size`` steps of every lane (``lax.scan`` over steps of ``vmap``-ed kernel
steps) and the host loop calls that same program until the run is done, so any run length, β grid, seed or step
size reuses it (β, keys, step sizes, model arrays and float kernel options are traced). With ``exchange=True``
every ``swap_every`` steps each system (d, a, c) proposes deterministic even/odd swaps between neighbouring slots
(parallel tempering; ``kernels.replica_exchange``).

Devices: the chain axis is sharded over a 1-d mesh (``engine.sharding``) with ``jax.shard_map``; within a
device chains run in blocks of ``chain_block`` (``lax.map`` over blocks). Every random number of lane
(d, k, a, c) derives from ``fold(point_key[d, k], a, c)`` with the GLOBAL chain index c, and the only
cross-chain reduction (the group-averaged acceptance for step-size adaptation) gathers all chains in global order,
so results do not depend on the number of devices (bitwise, for a fixed ``chain_block``) nor on ``chunk_size``.

Step sizes: dual averaging (``kernels.adaptation``; Hoffman & Gelman 2014 §3.2) during warmup, frozen after;
``adapt="group"`` adapts one step size per (disorder sample, slot) on the acceptance averaged over its chains and
copies, ``adapt="chain"`` one per lane, ``adapt="none"`` keeps the initial step size.
"""

from __future__ import annotations

import collections
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from thermodl.kernels import adaptation, replica_exchange

from . import chainstats as cs
from . import sharding
from .keys import fold
from .kernel_binding import make_sampler

__all__ = ["RunSpec", "Program", "program", "TRACE_COUNTS", "ADAPT_MODES"]

TRACE_COUNTS: collections.Counter = collections.Counter()
"""Traces (= compilations) per program part; tests use it to prove that new values never recompile."""

ADAPT_MODES = ("group", "chain", "none")
_CH = sharding.CHAINS
_LANES = jax.sharding.PartitionSpec(None, None, None, _CH)  # every carry leaf is [D, T, A, C, ...]


class RunSpec(NamedTuple):
    """Static configuration of a compiled program (hashable; a new value compiles a new program).

    Fields:
        kernel: concrete kernel name. static_options: sorted (name, value) static kernel options.
        stats: ``chainstats.StatsSpec``. n_copies: A. n_chains: real chains C (padding excluded from group means).
        exchange: replica exchange on. swap_every: kernel steps between swap rounds.
        adapt: one of ``ADAPT_MODES``. target: target acceptance (None: nothing to adapt).
        chunk_len: steps per compiled chunk. block: chains per block on a device.
        has_positions: the caller gives initial positions (else reference draws).
    """

    kernel: str
    static_options: tuple
    stats: cs.StatsSpec
    n_copies: int
    n_chains: int
    exchange: bool
    swap_every: int
    adapt: str
    target: float | None
    chunk_len: int
    block: int
    has_positions: bool


class Carry(NamedTuple):
    """The runner's state; every leaf is [D, T, A, C_local, ...] (chain axis sharded).

    Fields: state (kernel State), stats (``ChainStats``), exchange (``Exchange``), adapt (``AdaptationState``).
    """

    state: Any
    stats: cs.ChainStats
    exchange: cs.Exchange
    adapt: adaptation.AdaptationState


class Program(NamedTuple):
    """Compiled pieces of one RunSpec on one mesh: ``init``, ``chunk`` and ``fresh_stats`` (see ``program``)."""

    init: Callable
    chunk: Callable
    fresh_stats: Callable


# ------------------------------------------------------------------------------------------- lane helpers
def _sampler(spec: RunSpec, model, array_options):
    return make_sampler(model, spec.kernel, **dict(spec.static_options), **array_options)


def _lanes(fn, model_axis=True):
    """vmap ``fn(model, *lane_args)`` over D (model and args), then T, A, C (args only)."""
    inner = jax.vmap(jax.vmap(jax.vmap(fn, in_axes=(None, 0)), in_axes=(None, 0)), in_axes=(None, 0))
    return jax.vmap(inner, in_axes=(0 if model_axis else None, 0))


def _lane_keys(point_keys, chain_ids, n_copies):
    """Lane keys [D, T, A, C] = fold(point_key[d, k], a, c) with global chain indices c."""
    a_idx = jnp.arange(n_copies, dtype=jnp.uint32)
    per = jax.vmap(jax.vmap(lambda k, a: jax.vmap(lambda c: fold(k, a, c))(chain_ids), in_axes=(None, 0)),
                   in_axes=(0, None))
    return jax.vmap(lambda ks: per(ks, a_idx))(point_keys)


def _blocked(fn, block: int, n_local: int):
    """Apply ``fn(tree)`` (leaves [D, T, A, C_local, ...]) block by block of ``block`` chains (lax.map)."""
    nb = n_local // block
    if nb <= 1:
        return fn

    def split(x):
        x = x.reshape(x.shape[:3] + (nb, block) + x.shape[4:])
        return jnp.moveaxis(x, 3, 0)

    def join(x):
        x = jnp.moveaxis(x, 0, 3)
        return x.reshape(x.shape[:3] + (nb * block,) + x.shape[5:])

    def run(tree):
        return jax.tree.map(join, jax.lax.map(fn, jax.tree.map(split, tree)))

    return run


# ------------------------------------------------------------------------------------------- program body
def _init_local(models, point_keys, eps0, positions, chain_ids, array_options, *, spec: RunSpec):
    TRACE_COUNTS["init"] += 1
    lane_keys = _lane_keys(point_keys, chain_ids, spec.n_copies)
    D, T = point_keys.shape
    C = chain_ids.shape[0]

    def one(model, key_or_x):
        sampler = _sampler(spec, model, array_options)
        x = key_or_x if spec.has_positions else model.sample_reference(jax.random.fold_in(key_or_x, 1))
        st = sampler.init(x)
        return st, cs.stats_init(spec.stats, st.position, st.energy)

    state, stats = _blocked(lambda a: _lanes(one)(models, a), spec.block, C)(
        positions if spec.has_positions else lane_keys)
    dtype = state.energy.dtype
    slots = jnp.broadcast_to(jnp.arange(T)[None, :, None, None], (D, T, spec.n_copies, C))
    ex = jax.vmap(jax.vmap(jax.vmap(jax.vmap(lambda s: cs.exchange_init(s, T, dtype)))))(slots)
    eps = jnp.broadcast_to(jnp.asarray(eps0, dtype)[:, :, None, None], (D, T, spec.n_copies, C))
    return Carry(state, stats, ex, adaptation.init(eps))


def _group_mean(acc, spec: RunSpec):
    """Acceptance averaged over copies and the real chains of each (d, k), in global chain order: [D, T, 1, 1]."""
    full = jax.lax.all_gather(acc, _CH, axis=3, tiled=True)[:, :, :, :spec.n_chains]
    return jnp.mean(full, axis=(2, 3), keepdims=True)


def _swap(spec: RunSpec, carry: Carry, betas, swap_keys, t):
    """One DEO swap round in every system (d, a, c); labels, directions and round trips travel with replicas."""
    parity = jnp.mod(t // spec.swap_every, 2)

    def system(key, state, ex):  # leaves [T, ...]
        perm, info = replica_exchange.swap_permutation(jax.random.fold_in(key, t), state.energy, betas, parity)
        state, labels, direction = replica_exchange.apply_permutation((state, ex.labels, ex.direction), perm)
        trips = ex.round_trips.at[0].add((direction[0] == cs.DOWN).astype(jnp.int32))
        top = direction[-1]
        direction = direction.at[0].set(cs.UP).at[-1].set(jnp.where(top == cs.UP, cs.DOWN, top))
        pad = lambda v: jnp.concatenate([v, jnp.zeros((1,), v.dtype)])  # noqa: E731 — pair k lives in slot k
        acc = pad(jnp.where(info.is_proposed, info.acceptance_probability, 0.0)).astype(ex.swap_acc.dtype)
        return state, cs.Exchange(labels, direction, ex.swap_acc + acc,
                                  ex.swap_n + pad(info.is_proposed).astype(ex.swap_n.dtype), trips)

    f = jax.vmap(jax.vmap(jax.vmap(system, in_axes=(0, 1, 1), out_axes=1), in_axes=(0, 1, 1), out_axes=1))
    state, ex = f(swap_keys, carry.state, carry.exchange)
    return carry._replace(state=state, exchange=ex)


def _chunk_local(models, betas, point_keys, carry: Carry, chain_ids, t0, n_valid, n_warmup, n_prod, adapt_on,
                 array_options, *, spec: RunSpec):
    TRACE_COUNTS["chunk"] += 1
    lane_keys = _lane_keys(point_keys, chain_ids, spec.n_copies)
    step_keys = jax.vmap(jax.vmap(jax.vmap(jax.vmap(lambda k: jax.random.fold_in(k, 0)))))(lane_keys)
    swap_keys = jax.vmap(jax.vmap(jax.vmap(lambda k: jax.random.fold_in(k, 2))))(lane_keys[:, 0])  # [D, A, C]
    C = chain_ids.shape[0]
    dtype = carry.state.energy.dtype
    betas = betas.astype(dtype)
    half = 0.5 * jnp.diff(betas)
    half_down = jnp.concatenate([half, jnp.zeros((1,), dtype)])[None, :, None, None]
    half_up = jnp.concatenate([jnp.zeros((1,), dtype), half])[None, :, None, None]

    def kernel_step(args):
        keys, state, eps = args

        def per_d(model, keys, state, eps):
            step = _sampler(spec, model, array_options).step
            step = jax.vmap(step, in_axes=(0, 0, None, 0))  # chains
            step = jax.vmap(step, in_axes=(0, 0, None, 0))  # copies
            step = jax.vmap(step, in_axes=(0, 0, 0, 0))  # slots: one β each
            return step(keys, state, betas, eps)

        return jax.vmap(per_d)(models, keys, state, eps)

    def update_stats(stats, state, info, t):
        tp = t - n_warmup
        if spec.stats.overlap_bins:
            q = jnp.sum(state.position[:, :, 0] * state.position[:, :, 1], -1) / state.position.shape[-1]
            q = jnp.broadcast_to(q[:, :, None], state.energy.shape)
        else:
            q = jnp.zeros_like(state.energy)
        copy0 = jnp.broadcast_to((jnp.arange(spec.n_copies) == 0)[None, None, :, None], state.energy.shape)
        hd = jnp.broadcast_to(half_down, state.energy.shape)
        hu = jnp.broadcast_to(half_up, state.energy.shape)

        def lane(model, s, x, e, inf, a, b, qq, c0):
            return cs.stats_update(spec.stats, model, s, x, e, inf, a, b, qq, c0, tp, n_prod)

        f = lane
        for _ in range(3):
            f = jax.vmap(f, in_axes=(None,) + (0,) * 8)
        f = jax.vmap(f, in_axes=(0,) + (0,) * 8)
        return f(models, stats, state.position, state.energy, info, hd, hu, q, copy0)

    def one_step(carry: Carry, t):
        warm = t < n_warmup
        learn = warm & adapt_on
        eps = jnp.where(learn, adaptation.step_size(carry.adapt), adaptation.final_step_size(carry.adapt))
        keys = jax.vmap(jax.vmap(jax.vmap(jax.vmap(lambda k: jax.random.fold_in(k, t)))))(step_keys)
        state, info = _blocked(kernel_step, spec.block, C)((keys, carry.state, eps))
        carry = carry._replace(state=state)
        if spec.adapt != "none" and spec.target is not None:
            acc = jnp.where(jnp.isfinite(info.acceptance_probability), info.acceptance_probability, 0.0)
            acc = _group_mean(acc, spec) if spec.adapt == "group" else acc
            new = adaptation.update(carry.adapt, jnp.broadcast_to(acc, eps.shape), jnp.asarray(spec.target, dtype))
            carry = carry._replace(adapt=jax.tree.map(lambda n, o: jnp.where(learn, n, o), new, carry.adapt))
        if spec.exchange:
            do = jnp.mod(t + 1, spec.swap_every) == 0
            carry = jax.lax.cond(do, lambda c: _swap(spec, c, betas, swap_keys, t), lambda c: c, carry)
        stats = jax.lax.cond(warm, lambda s: s, lambda s: update_stats(s, carry.state, info, t), carry.stats)
        return carry._replace(stats=stats)

    def body(c, i):
        t = t0 + i
        return jax.lax.cond(i < n_valid, lambda cc: one_step(cc, t), lambda cc: cc, c), None

    return jax.lax.scan(body, carry, jnp.arange(spec.chunk_len, dtype=jnp.int32))[0]


def _fresh_local(models, carry: Carry, *, spec: RunSpec):
    TRACE_COUNTS["fresh"] += 1

    def one(model, st):
        return cs.stats_init(spec.stats, st.position, st.energy)

    stats = _lanes(one)(models, carry.state)
    ex = carry.exchange
    zero = jnp.zeros_like
    return carry._replace(stats=stats, exchange=ex._replace(swap_acc=zero(ex.swap_acc), swap_n=zero(ex.swap_n),
                                                            round_trips=zero(ex.round_trips)))


@functools.lru_cache(maxsize=64)
def program(spec: RunSpec, mesh) -> Program:
    """The jitted, chain-sharded pieces of ``spec`` on ``mesh`` (cached):

    * ``init(models, point_keys [D, T], eps0 [D, T], positions | None, chain_ids [C], array_options) -> Carry``
    * ``chunk(models, betas [T], point_keys, carry, chain_ids, t0, n_valid, n_warmup, n_prod, adapt_on,
      array_options) -> Carry`` — steps t0 .. t0 + n_valid − 1 (warmup while t < n_warmup: adapt if adapt_on,
      no statistics; swap counters always);
    * ``fresh_stats(models, carry) -> Carry`` — empty statistics and swap counters, same states.
    """
    rep = jax.sharding.PartitionSpec()
    chains = jax.sharding.PartitionSpec(_CH)

    def wrap(fn, in_specs, out_specs):
        return jax.jit(jax.shard_map(functools.partial(fn, spec=spec), mesh=mesh, in_specs=in_specs,
                                     out_specs=out_specs, check_vma=False))

    pos_spec = _LANES if spec.has_positions else rep
    init = wrap(_init_local, (rep, rep, rep, pos_spec, chains, rep), _LANES)
    chunk = wrap(_chunk_local, (rep, rep, rep, _LANES, chains) + (rep,) * 6, _LANES)
    fresh = wrap(_fresh_local, (rep, _LANES), _LANES)
    return Program(init, chunk, fresh)
