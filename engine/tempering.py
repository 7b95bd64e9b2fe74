"""Parallel tempering (replica exchange) with ladder adaptation, round trips, overlaps and bridge log Z.

R temperature slots ``betas[0] < ... < betas[R-1]`` each hold one replica per chain; every step runs
``sweeps_per_swap`` kernel steps/sweeps in every slot, then proposes swaps between neighbouring slots with the
deterministic even/odd (DEO, non-reversible) scheme: pairs (k, k+1) with k ≡ t (mod 2) at global step t
(Okabe, Kawata, Okamoto & Mikami 2001; Syed, Bouchard-Côté, Deligiannidis & Doucet, JRSS-B 84, 321 (2022),
arXiv:1905.02939).
During the first half of warmup the ladder is re-placed after rounds of doubling length at equal spacing of the
cumulative communication barrier Λ(β) = Σ_{k: β_{k+1} ≤ β} r_k estimated from the swap rejection rates r_k
(Syed et al., Algorithm 4), endpoints fixed; the second half of warmup is burn-in at the final ladder; production
uses the frozen ladder and the frozen (dual-averaged, per-slot) step sizes.

Layout: per-replica arrays are ``[C, R, chains, ...]`` inside, where C = ``n_copies`` ∈ {1, 2} independent PT
systems sharing one ladder (two copies give replica overlaps q_ab = x_a·x_b/dim); ``TemperingResult`` drops the
C axis when ``n_copies == 1`` (so positions are ``[R, chains, dim]``). Keys come from global indices only: kernel
step t, sweep s of copy a, slot k, chain c folds t, 0, s and then (a·R + k)·chains + c into ``fold_in(key, 2)``;
the swap round of step t in copy a, chain c folds t, 1 and then a·chains + c; initial states use the replica index under
``fold_in(key, 1)``. Results therefore do not depend on ``chunk_size``. One jitted chunk function (``lax.scan``
with a masked tail) serves warmup rounds and production; β, step sizes, keys and model arrays are traced, so a new
ladder, run length or seed never recompiles.

References: R. H. Swendsen & J.-S. Wang, PRL 57, 2607 (1986); K. Hukushima & K. Nemoto, J. Phys. Soc. Jpn. 65,
1604 (1996); T. Okabe, M. Kawata, Y. Okamoto & M. Mikami, Chem. Phys. Lett. 335, 435 (2001); Syed et al. (above);
bridge sampling: C. H. Bennett, J. Comput. Phys. 22, 245 (1976); X.-L. Meng & W. H. Wong, Stat. Sinica 6, 831
(1996) (geometric bridge).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from thermodl.kernels import adaptation, replica_exchange

from .ladder import communication_barrier, initial_ladder, ladder_from_barrier
from . import observables as obs
from .estimate import LogZEstimate
from .samplers import make_sampler
from .validate import check_beta, check_betas, check_nonnegative_int, check_positive_int

__all__ = [
    "TemperingResult",
    "run_tempering",
    "pt_log_partition",
    "bridge_log_partition",
    "bridge_curve",
    "communication_barrier",
    "ladder_from_barrier",
    "initial_ladder",
]

_UP, _DOWN, _UNKNOWN = 0, 1, -1  # replica direction: last extreme visited was β_min (UP) / β_max (DOWN)


class TemperingResult(NamedTuple):
    """Output of ``run_tempering``. Shapes use C = n_copies (axis absent when n_copies == 1), R slots.

    Fields:
        betas: [R] the (final, frozen) ladder, increasing.
        ladder_history: [n_rounds + 1, R] ladder before and after each adaptation round.
        step_size: [R] frozen step size per slot (continuous kernels; 1.0 placeholders for discrete ones).
        positions: [C, R, chains, dim] final configurations, by slot.
        state: kernel states with the same leading axes.
        labels: int [C, R, chains] which replica (its initial slot) sits in each slot at the end.
        energy: ``observables.Moments`` of E per [C, R, chains] over production.
        abs_magnetization, magnetization2, magnetization4: ``Moments`` of |m|, m², m⁴ per [C, R, chains] when the
            model has ``magnetization(x)``, else None.
        overlap_counts: int [R, chains, n_bins] histogram of q = x_0·x_1/dim over equal bins on [−1, 1]
            (n_copies == 2 only, else None); ``overlap_edges`` [n_bins + 1].
        overlap_edges: [n_bins + 1] bin edges, or None.
        swap_acceptance: [C, R−1, chains] mean swap acceptance probability of pair (k, k+1) over its proposals.
        swap_rate: [R−1] the same pooled over copies and chains.
        round_trips: int [C, chains] completed β_min → β_max → β_min trips during production.
        round_trip_rate: completed round trips per PT step per system (Syed et al.: 1/(2 + 2Λ) at best).
        barrier: the estimated global communication barrier Λ = Σ_k r_k of the final ladder.
        bridge_down: ``LogMeanExp`` of −(Δβ_k/2)·E over slot k's samples, [C, R−1, chains].
        bridge_up: ``LogMeanExp`` of +(Δβ_k/2)·E over slot k+1's samples, [C, R−1, chains].
        acceptance: [C, R, chains] mean kernel acceptance probability over production.
        n_divergent: int [C, R, chains] divergent kernel steps during production.
        nonfinite: bool [C, R, chains] the energy mean of this replica slot is NaN/inf (excluded downstream).
        kernel: kernel name; n_steps, n_warmup: production and warmup steps; n_copies: C.
    """

    betas: np.ndarray
    ladder_history: np.ndarray
    step_size: np.ndarray
    positions: jax.Array
    state: Any
    labels: jax.Array
    energy: obs.Moments
    abs_magnetization: obs.Moments | None
    magnetization2: obs.Moments | None
    magnetization4: obs.Moments | None
    overlap_counts: jax.Array | None
    overlap_edges: np.ndarray | None
    swap_acceptance: jax.Array
    swap_rate: np.ndarray
    round_trips: jax.Array
    round_trip_rate: float
    barrier: float
    bridge_down: obs.LogMeanExp
    bridge_up: obs.LogMeanExp
    acceptance: jax.Array
    n_divergent: jax.Array
    nonfinite: jax.Array
    kernel: str
    n_steps: int
    n_warmup: int
    n_copies: int


class _Stats(NamedTuple):
    energy: obs.Moments
    mag: tuple  # (|m|, m², m⁴) Moments, or () when the model has no magnetization
    overlap: obs.Histogram | None
    swap_acc: jax.Array  # [C, R−1, chains] Σ acceptance probability of proposed swaps
    swap_n: jax.Array  # [C, R−1, chains] number of proposals
    round_trips: jax.Array  # [C, chains]
    bridge_down: obs.LogMeanExp
    bridge_up: obs.LogMeanExp
    acc: jax.Array  # [C, R, chains] Σ kernel acceptance probability
    n_div: jax.Array  # [C, R, chains]


class _Carry(NamedTuple):
    state: Any  # kernel state, leaves [C, R, chains, ...]
    labels: jax.Array  # int32 [C, R, chains]
    direction: jax.Array  # int32 [C, R, chains], moves with its replica
    adapt: Any  # adaptation state over [R] slots, or None
    stats: _Stats


# ------------------------------------------------------------------------------------------------ ladders
def _parse_ladder(betas: Any) -> np.ndarray:
    if isinstance(betas, tuple) and len(betas) == 3 and isinstance(betas[2], (int, np.integer)) and not isinstance(
        betas[2], bool
    ):
        lo = check_beta(betas[0], "beta_min")
        hi = check_beta(betas[1], "beta_max")
        n = check_positive_int(betas[2], "n_replicas")
        if n < 2:
            raise ValueError(f"n_replicas must be at least 2, got {n}")
        if not hi > lo:
            raise ValueError(f"beta_max must be larger than beta_min, got beta_min={lo}, beta_max={hi}")
        return initial_ladder(lo, hi, n)
    ladder = check_betas(betas, "betas", increasing=True)
    if ladder.shape[0] < 2:
        raise ValueError(f"betas must hold at least 2 temperatures, got {ladder.shape[0]}")
    return ladder


# ------------------------------------------------------------------------------------------------ one PT step
def _fold(key, *idx):
    for i in idx:
        key = jax.random.fold_in(key, i)
    return key


def _stats_init(shape_cr, n_chains, dtype, has_mag, n_bins) -> _Stats:
    C, R = shape_cr
    mom = lambda: obs.moments_init((C, R, n_chains), dtype)  # noqa: E731
    lme = lambda: obs.log_mean_exp_init((C, R - 1, n_chains), dtype)  # noqa: E731
    hist = None
    if n_bins:
        one = obs.histogram_init(n_bins, -1.0, 1.0, dtype)
        hist = obs.Histogram(jnp.zeros((R, n_chains, n_bins), jnp.int32), one.lo, one.hi,
                             jnp.zeros((R, n_chains), jnp.int32))
    zeros = lambda s, d=dtype: jnp.zeros(s, d)  # noqa: E731
    return _Stats(
        mom(), (mom(), mom(), mom()) if has_mag else (), hist,
        zeros((C, R - 1, n_chains)), zeros((C, R - 1, n_chains)), zeros((C, n_chains), jnp.int32),
        lme(), lme(), zeros((C, R, n_chains)), zeros((C, R, n_chains), jnp.int32),
    )


def _pt_step(carry: _Carry, t, *, sampler, model, betas, step_size, key, adapt_on, sweeps_per_swap):
    C, R, n_chains = carry.labels.shape
    replica_idx = jnp.arange(C * R * n_chains, dtype=jnp.uint32).reshape(C, R, n_chains)  # (a·R + k)·chains + c
    system_idx = jnp.arange(C * n_chains, dtype=jnp.uint32).reshape(C, n_chains)  # a·chains + c
    key_t = jax.random.fold_in(key, t)
    per_element = jax.vmap(jax.random.fold_in, in_axes=(None, 0))
    beta_grid = jnp.broadcast_to(betas[None, :, None], (C, R, n_chains))
    use_adapt = carry.adapt is not None
    eps = jnp.where(adapt_on, adaptation.step_size(carry.adapt), step_size) if use_adapt else step_size
    eps_grid = jnp.broadcast_to(eps[None, :, None], (C, R, n_chains))
    step_all = jax.vmap(jax.vmap(jax.vmap(sampler.step)))

    def sweep(s, inner):
        state, acc, n_div = inner
        base = _fold(key_t, 0, s)
        keys = per_element(base, replica_idx.reshape(-1)).reshape(C, R, n_chains)
        state, info = step_all(keys, state, beta_grid, eps_grid)
        return state, acc + info.acceptance_probability, n_div + info.is_divergent.astype(jnp.int32)

    zero = jnp.zeros((C, R, n_chains), carry.stats.acc.dtype)
    state, acc, n_div = jax.lax.fori_loop(
        0, sweeps_per_swap, sweep, (carry.state, zero, jnp.zeros((C, R, n_chains), jnp.int32))
    )
    acc = acc / sweeps_per_swap
    adapt_state = carry.adapt
    if use_adapt:
        mean_acc = jnp.mean(jnp.where(jnp.isfinite(acc), acc, 0.0), axis=(0, 2))
        updated = adaptation.update(adapt_state, mean_acc, jnp.full_like(mean_acc, sampler.target_acceptance))
        adapt_state = jax.tree.map(lambda u, o: jnp.where(adapt_on, u, o), updated, adapt_state)

    # DEO swaps, one permutation per (copy, chain); the replicas' labels and directions travel with them.
    parity = jnp.mod(t, 2)
    swap_keys = per_element(jax.random.fold_in(key_t, 1), system_idx.reshape(-1)).reshape(C, n_chains)
    swap = jax.vmap(jax.vmap(replica_exchange.swap_permutation, in_axes=(0, 1, None, None), out_axes=(1, 1)),
                    in_axes=(0, 0, None, None))
    perm, sinfo = swap(swap_keys, state.energy, betas, parity)
    permute = jax.vmap(jax.vmap(replica_exchange.apply_permutation, in_axes=(1, 1), out_axes=1))
    state, labels, direction = permute((state, carry.labels, carry.direction), perm)

    # Round trips: a replica arriving at β_min after visiting β_max completes one.
    bottom, top = direction[:, 0], direction[:, -1]
    trips = carry.stats.round_trips + (bottom == _DOWN).astype(jnp.int32)
    direction = direction.at[:, 0].set(_UP).at[:, -1].set(jnp.where(top == _UP, _DOWN, top))

    st = carry.stats
    energy = state.energy
    mag = st.mag
    if mag:
        m = jax.vmap(jax.vmap(jax.vmap(model.magnetization)))(state.position).astype(energy.dtype)
        mag = tuple(obs.moments_update(mo, v) for mo, v in zip(mag, (jnp.abs(m), m**2, m**4)))
    hist = st.overlap
    if hist is not None:
        q = obs.overlap(state.position[0], state.position[1])  # [R, chains]
        axes = obs.Histogram(0, None, None, 0)
        upd = jax.vmap(jax.vmap(obs.histogram_update, in_axes=(axes, 0), out_axes=axes), in_axes=(axes, 0),
                       out_axes=axes)
        hist = upd(hist, q)
    half = (0.5 * (betas[1:] - betas[:-1])).astype(energy.dtype)[None, :, None]
    stats = _Stats(
        obs.moments_update(st.energy, energy), mag, hist,
        st.swap_acc + jnp.where(sinfo.is_proposed, sinfo.acceptance_probability, 0.0).astype(st.swap_acc.dtype),
        st.swap_n + sinfo.is_proposed.astype(st.swap_n.dtype), trips,
        obs.log_mean_exp_update(st.bridge_down, -half * energy[:, :-1]),
        obs.log_mean_exp_update(st.bridge_up, half * energy[:, 1:]),
        st.acc + acc, st.n_div + n_div,
    )
    return _Carry(state, labels, direction, adapt_state, stats)


@partial(jax.jit, static_argnames=("kernel", "static_options", "chunk_size", "sweeps_per_swap"))
def _run_chunk(carry, model, betas, step_size, key, t0, n_valid, adapt_on, array_options, *, kernel,
               static_options, chunk_size, sweeps_per_swap):
    sampler = make_sampler(model, kernel, **dict(static_options), **array_options)

    def body(c, i):
        step = partial(_pt_step, sampler=sampler, model=model, betas=betas, step_size=step_size, key=key,
                       adapt_on=adapt_on, sweeps_per_swap=sweeps_per_swap)
        return jax.lax.cond(i < n_valid, lambda cc: step(cc, t0 + i), lambda cc: cc, c), None

    return jax.lax.scan(body, carry, jnp.arange(chunk_size))[0]


@partial(jax.jit, static_argnames=("kernel", "static_options", "shape"))
def _init_state(model, key, array_options, *, kernel, static_options, shape):
    C, R, n_chains = shape
    sampler = make_sampler(model, kernel, **dict(static_options), **array_options)
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(C * R * n_chains, dtype=jnp.uint32))
    x = jax.vmap(model.sample_reference)(keys)
    states = jax.vmap(sampler.init)(x)
    return jax.tree.map(lambda leaf: leaf.reshape((C, R, n_chains) + leaf.shape[1:]), states)


# ------------------------------------------------------------------------------------------------ driver
def _as_key(key):
    if key is None:
        raise ValueError("key must be a jax.random.key (or an int seed), got None")
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    return key


def _split_options(options: dict) -> tuple[tuple, dict]:
    """Python ints/bools/strings (trajectory lengths, batch sizes) are static; arrays and floats are traced."""
    static = tuple(sorted((k, v) for k, v in options.items() if isinstance(v, (bool, int, str))))
    arrays = {k: v for k, v in options.items() if not isinstance(v, (bool, int, str))}
    return static, arrays


def _round_lengths(n_half: int, n_rounds: int | None) -> list[int]:
    """Doubling adaptation rounds L, 2L, 4L, ... filling at most ``n_half`` steps (Syed et al. 2022, §5.3)."""
    if n_rounds is None:
        n_rounds = int(np.clip(np.floor(np.log2(n_half / 8 + 1)), 0, 8))
    if n_rounds <= 0 or n_half < 2:
        return []
    base = max(n_half // (2**n_rounds - 1), 2)
    lengths, total = [], 0
    for j in range(n_rounds):
        if total + base * 2**j > n_half:
            break
        lengths.append(base * 2**j)
        total += base * 2**j
    return lengths


def _rejection(stats: _Stats) -> np.ndarray:
    acc = np.asarray(jnp.sum(stats.swap_acc, axis=(0, 2)), np.float64)
    n = np.asarray(jnp.sum(stats.swap_n, axis=(0, 2)), np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - acc / n


def run_tempering(
    model: Any,
    betas: Any,
    *,
    key: jax.Array,
    n_chains: int = 16,
    n_steps: int = 1000,
    n_warmup: int | None = None,
    kernel: str = "auto",
    step_size: float | None = None,
    sweeps_per_swap: int = 1,
    adapt_ladder: bool = True,
    n_ladder_rounds: int | None = None,
    n_copies: int = 1,
    overlap_bins: int | None = None,
    chunk_size: int = 100,
    progress: Callable[[int, int], None] | None = None,
    **kernel_options,
) -> TemperingResult:
    """Run parallel tempering with DEO swaps, warmup ladder/step-size adaptation and streamed observables.

    Args:
        model: a thermodl model (``models/base.py``).
        betas: explicit increasing ladder [R] (list/array, R ≥ 2), or a tuple ``(beta_min, beta_max, n_replicas)``
            with an int ``n_replicas`` (geometric start if β_min > 0, quadratic if β_min = 0).
        key: PRNG key (or an int seed). n_chains: independent PT systems per copy.
        n_steps: production PT steps (one step = ``sweeps_per_swap`` kernel steps/sweeps in every slot, then one
            DEO swap round).
        n_warmup: warmup steps (default ``n_steps // 2``): ladder rounds in the first half (if ``adapt_ladder``),
            burn-in in the second; continuous kernels adapt one step size per slot throughout (dual averaging,
            ``kernels.adaptation``), frozen for production.
        kernel, step_size, **kernel_options: see ``engine.samplers.make_sampler``; ``step_size`` (scalar or [R])
            is the initial (or, for kernels without a target acceptance, the fixed) step size per slot.
        adapt_ladder: re-place the ladder at equal communication-barrier spacing (Syed et al. 2022).
        n_ladder_rounds: number of doubling adaptation rounds (default: as many as fit, up to 8).
        n_copies: 1, or 2 for two independent systems on the same ladder (replica overlap histogram).
        overlap_bins: bins of the P(q) histogram on [−1, 1] (default dim + 1: one bin per value of a ±1 overlap).
        chunk_size: steps per compiled ``lax.scan`` chunk (results do not depend on it).
        progress: called as ``progress(steps_done, steps_total)`` after every chunk.

    Returns:
        ``TemperingResult`` (shapes documented there).

    Raises:
        ValueError: bad ladder, sizes, copies, or kernel/options.
    """
    ladder = _parse_ladder(betas)
    key = _as_key(key)
    n_chains = check_positive_int(n_chains, "n_chains")
    n_steps = check_positive_int(n_steps, "n_steps")
    n_warmup = n_steps // 2 if n_warmup is None else check_nonnegative_int(n_warmup, "n_warmup")
    sweeps_per_swap = check_positive_int(sweeps_per_swap, "sweeps_per_swap")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if n_copies not in (1, 2) or isinstance(n_copies, bool):
        raise ValueError(f"n_copies must be 1 or 2, got {n_copies!r}")
    if n_ladder_rounds is not None:
        n_ladder_rounds = check_nonnegative_int(n_ladder_rounds, "n_ladder_rounds")
    sampler = make_sampler(model, kernel, **kernel_options)  # validates kernel and options
    static_options, array_options = _split_options(kernel_options)
    n_bins = 0
    if n_copies == 2:
        n_bins = int(model.dim) + 1 if overlap_bins is None else check_positive_int(overlap_bins, "overlap_bins")
    R, C = ladder.shape[0], n_copies
    has_mag = callable(getattr(model, "magnetization", None))
    dtype = jnp.result_type(float)

    try:
        eps_np = np.broadcast_to(np.asarray(sampler.default_step_size if step_size is None else step_size,
                                            np.float64), (R,))
    except (TypeError, ValueError):
        raise ValueError(f"step_size must be a positive number or an array [R={R}], got {step_size!r}") from None
    if not np.all(np.isfinite(eps_np) & (eps_np > 0)):
        raise ValueError(f"step_size must be finite and > 0, got {step_size!r}")
    eps = jnp.asarray(eps_np, dtype)
    adapt_state = adaptation.init(eps) if sampler.target_acceptance is not None else None

    state = _init_state(model, jax.random.fold_in(key, 1), array_options, kernel=sampler.name,
                        static_options=static_options, shape=(C, R, n_chains))
    labels = jnp.broadcast_to(jnp.arange(R, dtype=jnp.int32)[None, :, None], (C, R, n_chains))
    direction = jnp.full((C, R, n_chains), _UNKNOWN, jnp.int32).at[:, 0].set(_UP)
    new_stats = partial(_stats_init, (C, R), n_chains, dtype, has_mag, n_bins)
    carry = _Carry(state, labels, direction, adapt_state, new_stats())
    run_key = jax.random.fold_in(key, 2)
    total, t = n_warmup + n_steps, 0

    def segment(carry, n, adapt_on, ladder, eps):
        nonlocal t
        done = 0
        while done < n:
            nv = min(chunk_size, n - done)
            carry = _run_chunk(carry, model, jnp.asarray(ladder, dtype), eps, run_key, jnp.int32(t),
                               jnp.int32(nv), jnp.asarray(adapt_on), array_options, kernel=sampler.name,
                               static_options=static_options, chunk_size=chunk_size,
                               sweeps_per_swap=sweeps_per_swap)
            done, t = done + nv, t + nv
            if progress is not None:
                progress(t, total)
        return carry

    history = [ladder.copy()]
    rounds = _round_lengths(n_warmup // 2, n_ladder_rounds) if adapt_ladder else []
    for n in rounds:
        carry = segment(carry._replace(stats=new_stats()), n, True, ladder, eps)
        ladder = ladder_from_barrier(ladder, _rejection(carry.stats))
        history.append(ladder.copy())
    carry = segment(carry, n_warmup - sum(rounds), True, ladder, eps)
    if adapt_state is not None:
        eps = jnp.asarray(adaptation.final_step_size(carry.adapt), dtype)
    carry = segment(carry._replace(stats=new_stats()), n_steps, False, ladder, eps)

    st = carry.stats
    rejection = _rejection(st)
    sq = (lambda x: x[0]) if C == 1 else (lambda x: x)
    sq_acc = lambda a: type(a)(*(f if jnp.ndim(f) == 0 else sq(f) for f in a))  # noqa: E731
    n_prop = jnp.maximum(st.swap_n, 1.0)
    return TemperingResult(
        betas=ladder, ladder_history=np.stack(history), step_size=np.asarray(eps, np.float64),
        positions=sq(carry.state.position), state=jax.tree.map(sq, carry.state), labels=sq(carry.labels),
        energy=sq_acc(st.energy),
        abs_magnetization=sq_acc(st.mag[0]) if has_mag else None,
        magnetization2=sq_acc(st.mag[1]) if has_mag else None,
        magnetization4=sq_acc(st.mag[2]) if has_mag else None,
        overlap_counts=st.overlap.counts if n_bins else None,
        overlap_edges=np.linspace(-1.0, 1.0, n_bins + 1) if n_bins else None,
        swap_acceptance=sq(jnp.where(st.swap_n > 0, st.swap_acc / n_prop, jnp.nan)),
        swap_rate=1.0 - rejection,
        round_trips=sq(st.round_trips),
        round_trip_rate=float(jnp.sum(st.round_trips)) / (n_steps * C * n_chains),
        barrier=float(communication_barrier(ladder, rejection)[-1]),
        bridge_down=sq_acc(st.bridge_down), bridge_up=sq_acc(st.bridge_up),
        acceptance=sq(st.acc / n_steps), n_divergent=sq(st.n_div),
        nonfinite=sq(~jnp.isfinite(st.energy.mean)),
        kernel=sampler.name, n_steps=n_steps, n_warmup=n_warmup, n_copies=C,
    )



# ------------------------------------------------------------------------------------------------ bridge log Z
def _systems(x: Any, n_copies: int) -> np.ndarray:
    """[C?, P, chains] -> [P, C·chains] float64 (copies are independent systems too)."""
    x = np.asarray(x, np.float64)
    if n_copies == 1:
        return x
    return np.concatenate(list(x), axis=-1)


def bridge_curve(result: TemperingResult) -> tuple[np.ndarray, np.ndarray, dict]:
    """log Z(β_k) − log Z(β_0) at every slot [R] from a PT run, by geometric-bridge sampling between neighbours.

    log Z_{k+1}/Z_k = log E_k[e^{−(Δβ_k/2)E}] − log E_{k+1}[e^{+(Δβ_k/2)E}] (Meng & Wong 1996 with the geometric
    bridge), accumulated over k. The value pools every system's log-mean-exp accumulators; the standard error is the
    delta method over independent systems (chains × copies): system s has influence
    ψ_{m,s} = Σ_{k<m} (Â_{k,s}/Ā_k − B̂_{k,s}/B̄_k) on the m-th value, stderr = sd_s(ψ_m)/√S — the chain-to-chain
    spread, so autocorrelation within a chain and correlations between pairs sharing a slot are accounted for.
    Systems with a non-finite energy anywhere are excluded and counted.

    Returns:
        (log_z [R] with log_z[0] = 0, stderr [R], info) with info = {"n_systems", "n_excluded",
        "pair_log_ratio" [R−1], "pair_stderr" [R−1]}.
    """
    C = result.n_copies
    down = _systems(result.bridge_down.log_sum, C)  # [R−1, S]
    up = _systems(result.bridge_up.log_sum, C)
    bad = _systems(result.nonfinite, C).any(axis=0) | ~np.isfinite(down).all(axis=0) | ~np.isfinite(up).all(axis=0)
    down, up = down[:, ~bad], up[:, ~bad]
    S = down.shape[1]
    if S < 2:
        raise ValueError(f"bridge sampling needs at least 2 finite systems, got {S} ({int(bad.sum())} excluded)")
    big_d, big_u = _logmeanexp(down, axis=1), _logmeanexp(up, axis=1)  # the counts cancel in the ratios
    pair = big_d - big_u
    infl = np.exp(down - big_d[:, None]) - np.exp(up - big_u[:, None])  # [R−1, S]
    cum = np.cumsum(infl, axis=0)
    log_z = np.concatenate([[0.0], np.cumsum(pair)])
    stderr = np.concatenate([[0.0], np.std(cum, axis=1, ddof=1) / math.sqrt(S)])
    info = {
        "n_systems": S,
        "n_excluded": int(bad.sum()),
        "pair_log_ratio": pair,
        "pair_stderr": np.std(infl, axis=1, ddof=1) / math.sqrt(S),
    }
    return log_z, stderr, info


def bridge_log_partition(result: TemperingResult) -> tuple[float, float, dict]:
    """log Z(β_max) − log Z(β_min) ± stderr from a PT run: the last point of ``bridge_curve``.

    Returns:
        (value, stderr, info) as in ``bridge_curve``.
    """
    log_z, stderr, info = bridge_curve(result)
    return float(log_z[-1]), float(stderr[-1]), info


def _logmeanexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.mean(np.exp(x - m), axis=axis))


def pt_log_partition(
    model: Any,
    beta: float,
    *,
    key: jax.Array,
    n_replicas: int | None = None,
    n_chains: int = 16,
    n_steps: int = 2000,
    n_warmup: int | None = None,
    kernel: str = "auto",
    adapt_ladder: bool = True,
    progress: Callable[[int, int], None] | None = None,
    **options,
) -> LogZEstimate:
    """log Z(β) by parallel tempering on a ladder from 0 to β and geometric-bridge sampling between neighbours.

    log Z(β) = log Z(0) + Σ_k log Z_{k+1}/Z_k (see ``bridge_log_partition``); log Z(0) is the model's exact
    reference value. The ladder starts quadratic, is adapted during warmup (Syed et al. 2022) and frozen.

    Args:
        model: a thermodl model. beta: target inverse temperature (≥ 0; β = 0 returns log Z(0) exactly).
        key: PRNG key. n_replicas: ladder size R (default max(8, ⌈1.5·√dim⌉)).
        n_chains, n_steps, n_warmup, kernel, adapt_ladder, progress: as in ``run_tempering``.
        **options: further ``run_tempering`` arguments (sweeps_per_swap, chunk_size, step_size, kernel options).

    Returns:
        ``LogZEstimate(method="pt")`` with diagnostics: swap_rate [R−1], round_trip_rate, round_trips, barrier,
        ladder [R], ladder_history, step_size, acceptance [R], n_divergent, n_systems, n_excluded,
        pair_log_ratio, pair_stderr.
    """
    beta = check_beta(beta, "beta")
    log_z0 = float(model.log_reference_partition())
    if beta == 0:
        return LogZEstimate(log_z0, 0.0, "pt", 0.0, {"note": "beta = 0: exact reference value"})
    if n_replicas is None:
        n_replicas = max(8, math.ceil(1.5 * math.sqrt(int(model.dim))))
    n_replicas = check_positive_int(n_replicas, "n_replicas")
    if n_replicas < 2:
        raise ValueError(f"n_replicas must be at least 2, got {n_replicas}")
    res = run_tempering(model, (0.0, beta, n_replicas), key=key, n_chains=n_chains, n_steps=n_steps,
                        n_warmup=n_warmup, kernel=kernel, adapt_ladder=adapt_ladder, progress=progress, **options)
    value, stderr, info = bridge_log_partition(res)
    diagnostics = {
        "swap_rate": res.swap_rate,
        "round_trip_rate": res.round_trip_rate,
        "round_trips": int(jnp.sum(res.round_trips)),
        "barrier": res.barrier,
        "ladder": res.betas,
        "ladder_history": res.ladder_history,
        "step_size": res.step_size,
        "acceptance": np.nanmean(np.asarray(res.acceptance, np.float64), axis=-1),
        "n_divergent": int(jnp.sum(res.n_divergent)),
        "kernel": res.kernel,
        **info,
    }
    return LogZEstimate(log_z0 + value, stderr, "pt", beta, diagnostics)
