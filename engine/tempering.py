"""Parallel tempering: the equilibrium runner with replica exchange, ladder adaptation and bridge log Z.

``run_tempering`` is ``engine.ensemble``'s driver with ``exchange=True``: R temperature slots hold one replica per
chain (per copy, per disorder sample); every PT step runs ``sweeps_per_swap`` kernel steps in every slot, then
proposes deterministic even/odd (non-reversible) swaps between neighbouring slots (Okabe et al. 2001; Syed,
Bouchard-Côté, Deligiannidis & Doucet, JRSS-B 84, 321 (2022)). During the first half of warmup the ladder is
re-placed after rounds of doubling length at equal spacing of the communication barrier
(``engine.ladder``; Syed et al. Algorithm 4), endpoints fixed, one ladder shared by all disorder samples; the
second half of warmup is burn-in at the final ladder; production uses the frozen ladder and step sizes.

log Z by geometric bridges between neighbouring slots (Bennett 1976; Meng & Wong 1996):
log Z_{k+1}/Z_k = log E_k[e^{−(Δβ_k/2)E}] − log E_{k+1}[e^{+(Δβ_k/2)E}], with a delta-method standard error over
independent systems (``bridge_curve``). Because chains never talk to each other, everything shards over devices
like any other ensemble (``engine.equilibrium``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np

from . import ensemble as drv
from . import observables as obs
from . import reliability as rel
from .checkpoint import Checkpointer, fingerprint
from .ensemble import EnsembleResult
from .progress import progress_callback
from .logz_estimate import LogZEstimate
from .ladder import communication_barrier, initial_ladder, ladder_from_barrier
from .validate import check_beta, check_betas, check_nonnegative_int, check_positive_int

__all__ = ["TemperingResult", "run_tempering", "pt_log_partition", "bridge_curve", "bridge_log_partition",
           "communication_barrier", "ladder_from_barrier", "initial_ladder"]

TemperingResult = EnsembleResult
"""A parallel-tempering run is an ``EnsembleResult`` with ``exchange``, ``ladder_history`` and ``barrier``."""


def _parse_ladder(betas: Any) -> np.ndarray:
    if isinstance(betas, tuple) and len(betas) == 3 and isinstance(betas[2], (int, np.integer)) \
            and not isinstance(betas[2], bool):
        lo, hi = check_beta(betas[0], "beta_min"), check_beta(betas[1], "beta_max")
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


def _round_lengths(n_half: int, n_rounds: int | None) -> list[int]:
    """Doubling adaptation rounds L, 2L, 4L, ... filling at most ``n_half`` PT steps (Syed et al. 2022 §5.3)."""
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


def _rejection(s, carry) -> np.ndarray:
    """Swap rejection rate of each neighbouring pair [R−1], pooled over disorder samples, copies and chains."""
    ex = drv._host(s, carry.exchange)
    tax = 0 if s.n_disorder is None else 1
    acc = np.moveaxis(ex.swap_acc, tax, 0).reshape(s.n_temps, -1).sum(1)
    n = np.moveaxis(ex.swap_n, tax, 0).reshape(s.n_temps, -1).sum(1)
    return 1.0 - np.where(n > 0, acc / np.maximum(n, 1), 0.0)[:-1]


def run_tempering(
    model: Any,
    betas,
    *,
    key,
    n_chains: int = 16,
    n_steps: int = 2000,
    n_warmup: int | None = None,
    kernel: str = "auto",
    step_size=None,
    adapt_ladder: bool = True,
    n_ladder_rounds: int | None = None,
    n_copies: int = 1,
    overlap_bins: int | None = None,
    sweeps_per_swap: int = 1,
    chunk_size: int = 200,
    progress: Callable[[int, int], None] | None = None,
    disorder_axis: bool = False,
    observables=None,
    chain_block: int | None = None,
    devices=None,
    checkpoint=None,
    checkpoint_every: int = 10,
    **kernel_options,
) -> TemperingResult:
    """Run parallel tempering with DEO swaps, warmup ladder/step-size adaptation and streamed observables.

    Args:
        model: a thermodl model, or a stack of models with ``disorder_axis=True`` (one compiled program runs every
            disorder sample; outputs gain a leading D axis).
        betas: increasing ladder [R] (R ≥ 2), or ``(beta_min, beta_max, n_replicas)`` (geometric start if
            β_min > 0, quadratic if β_min = 0).
        key: PRNG key or int seed. n_chains: independent PT systems per copy (and disorder sample).
        n_steps, n_warmup: production / warmup PT steps (one step = ``sweeps_per_swap`` kernel steps in every
            slot, then one swap round); n_warmup defaults to n_steps // 2. Step sizes adapt per slot (dual
            averaging on the acceptance averaged over the slot's chains) during all of warmup.
        kernel, step_size, **kernel_options: see ``engine.kernel_binding``.
        adapt_ladder: re-place the ladder at equal communication-barrier spacing during the first half of warmup.
        n_ladder_rounds: number of doubling rounds (default: as many as fit, up to 8).
        n_copies: 1, or 2 independent systems per chain on the same ladder (overlap histogram P(q)).
        overlap_bins: bins of P(q) on [−1, 1] (default dim + 1).
        chunk_size, progress, observables, chain_block, devices, checkpoint, checkpoint_every: see
            ``engine.ensemble.run_ensemble`` (a resumed run is bit-identical to an uninterrupted one; the ladder
            history is part of the checkpoint).

    Returns:
        ``EnsembleResult`` with ``exchange`` (swap acceptance per pair, pooled swap rate, round trips),
        ``ladder_history`` [rounds + 1, R] and ``barrier`` (global communication barrier Λ of the final ladder).
    """
    ladder = _parse_ladder(betas)
    n_steps = check_positive_int(n_steps, "n_steps")
    n_warmup = n_steps // 2 if n_warmup is None else check_nonnegative_int(n_warmup, "n_warmup")
    k = check_positive_int(sweeps_per_swap, "sweeps_per_swap")
    if n_ladder_rounds is not None:
        n_ladder_rounds = check_nonnegative_int(n_ladder_rounds, "n_ladder_rounds")
    bins = 0
    if n_copies == 2:
        import jax

        dim = int((jax.tree.map(lambda a: a[0], model) if disorder_axis else model).dim)
        bins = dim + 1 if overlap_bins is None else check_positive_int(overlap_bins, "overlap_bins")
    s, carry = drv.start(model, ladder, key=key, n_chains=n_chains, kernel=kernel, step_size=step_size,
                         adapt="group", n_copies=n_copies, exchange=True, swap_every=k, observables=observables,
                         overlap_bins=bins, chunk_size=chunk_size, chain_block=chain_block, devices=devices,
                         disorder_axis=disorder_axis, kernel_options=kernel_options)
    warm, prod = n_warmup * k, n_steps * k
    total = warm + prod
    # The run as segments (start, length, fresh statistics first, re-place the ladder after): ladder rounds, the
    # rest of warmup, production. A checkpoint records the step t reached and the ladder history; on resume the
    # segments that ended before t are skipped and the one containing t continues without a reset.
    segments, t = [], 0
    for n in (_round_lengths(n_warmup // 2, n_ladder_rounds) if adapt_ladder else []):
        segments.append((t, n * k, True, True))
        t += n * k
    segments += [(t, warm - t, False, False), (warm, prod, True, False)]
    history = [ladder.copy()]
    t_done, ck = 0, None
    if checkpoint is not None:
        ck = Checkpointer(checkpoint, every=checkpoint_every, fingerprint=fingerprint(
            run=s.fingerprint, n_steps=n_steps, n_warmup=n_warmup, k=k, segments=segments))
        loaded = ck.load(carry)
        if loaded is not None:
            carry, meta = loaded
            t_done, history = int(meta["t"]), [np.asarray(h, np.float64) for h in meta["history"]]
            ladder = history[-1].copy()

    def save(c, t_now):
        ck.on_chunk(c, t_now, history=[h.tolist() for h in history])

    with progress_callback(progress, "parallel tempering") as cb:
        for i, (start, n, reset, replace) in enumerate(segments):
            if start + n > t_done:
                begin = max(start, t_done)
                if reset and begin == start:
                    carry = s.prog.fresh_stats(s.models, carry)
                carry = drv.advance(s, carry, ladder, begin, start + n - begin, n_warmup=warm, n_prod=prod,
                                    progress=cb, total=total, on_chunk=None if ck is None else save)
            if replace and len(history) < i + 2:  # this round's ladder update (also after resuming at its end)
                ladder = ladder_from_barrier(ladder, _rejection(s, carry))
                history.append(ladder.copy())
                if ck is not None:
                    ck.save(carry, start + n, history=[h.tolist() for h in history])
    if ck is not None and t_done < total:
        ck.save(carry, total, history=[h.tolist() for h in history])
    res = drv.finish(s, carry, ladder, n_steps=n_steps, n_warmup=n_warmup)
    rejection = _rejection(s, carry)
    res.exchange["round_trip_rate"] = float(np.sum(res.exchange["round_trips"])) / (
        n_steps * np.size(res.exchange["round_trips"]))
    return dataclasses.replace(res, ladder_history=np.stack(history),
                               barrier=float(communication_barrier(ladder, rejection)[-1]))


# ------------------------------------------------------------------------------------------------ bridge log Z
def _logmeanexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.mean(np.exp(x - m), axis=axis))


def _bridge_one(down, up, bad):
    """down, up: [T, S] log sums per system; bad [S]. Returns (log_z [T], stderr [T], info)."""
    down, up = down[:-1][:, ~bad], up[1:][:, ~bad]
    S = down.shape[1]
    if S < 2:
        raise ValueError(f"bridge sampling needs at least 2 finite systems, got {S} ({int(bad.sum())} excluded)")
    big_d, big_u = _logmeanexp(down, 1), _logmeanexp(up, 1)  # the counts cancel in the ratios
    pair = big_d - big_u
    infl = np.exp(down - big_d[:, None]) - np.exp(up - big_u[:, None])  # [T−1, S]
    cum = np.cumsum(infl, axis=0)
    log_z = np.concatenate([[0.0], np.cumsum(pair)])
    stderr = np.concatenate([[0.0], np.std(cum, axis=1, ddof=1) / math.sqrt(S)])
    info = {"n_systems": S, "n_excluded": int(bad.sum()), "pair_log_ratio": pair,
            "pair_stderr": np.std(infl, axis=1, ddof=1) / math.sqrt(S)}
    return log_z, stderr, info


def bridge_curve(result: EnsembleResult) -> tuple[np.ndarray, np.ndarray, dict]:
    """log Z(β_k) − log Z(β_0) at every slot [(D,) T] by geometric bridges between neighbouring slots.

    The value pools every system's (chain's, copy's) log-mean-exp accumulators; the standard error is the delta
    method over independent systems: system s has influence ψ_{m,s} = Σ_{k<m} (Â_{k,s}/Ā_k − B̂_{k,s}/B̄_k) on
    the m-th value, stderr = sd_s(ψ_m)/√S — the chain-to-chain spread, so autocorrelation within a chain and the
    correlation of pairs sharing a slot are accounted for. Works for replica-exchange and independent-chain
    ensembles alike. Systems with a non-finite energy anywhere are excluded and counted.

    Returns:
        (log_z, stderr, info) with info = {"n_systems", "n_excluded", "pair_log_ratio", "pair_stderr"}
        (per disorder sample, lists, when the result has a D axis).
    """
    T = len(result.betas)
    down, up = np.asarray(result.bridge_down.log_sum, np.float64), np.asarray(result.bridge_up.log_sum, np.float64)
    bad = np.asarray(result.nonfinite, bool)
    lead = down.ndim - (2 if result.n_copies == 1 else 3)  # 1 with a disorder axis

    def systems(x):  # [T, (A,) C] -> [T, S]
        return x.reshape(T, -1)

    if lead == 0:
        b = systems(bad).any(0) | ~np.isfinite(systems(down)).all(0) | ~np.isfinite(systems(up)).all(0)
        return _bridge_one(systems(down), systems(up), b)
    outs = []
    for d in range(down.shape[0]):
        b = systems(bad[d]).any(0) | ~np.isfinite(systems(down[d])).all(0) | ~np.isfinite(systems(up[d])).all(0)
        outs.append(_bridge_one(systems(down[d]), systems(up[d]), b))
    return (np.stack([o[0] for o in outs]), np.stack([o[1] for o in outs]),
            {k: [o[2][k] for o in outs] for k in outs[0][2]})


def bridge_log_partition(result: EnsembleResult) -> tuple[float, float, dict]:
    """log Z(β_max) − log Z(β_min) ± stderr from a run without a disorder axis: the last point of ``bridge_curve``."""
    log_z, stderr, info = bridge_curve(result)
    return float(log_z[-1]), float(stderr[-1]), info


def pt_log_partition(model: Any, beta: float, *, key, n_replicas: int | None = None, n_chains: int = 16,
                     n_steps: int = 2000, n_warmup: int | None = None, kernel: str = "auto",
                     adapt_ladder: bool = True, progress: Callable[[int, int], None] | None = None,
                     **options) -> LogZEstimate:
    """log Z(β) by parallel tempering on a ladder from 0 to β and geometric bridges between neighbours.

    log Z(β) = log Z(0) + Σ_k log Z_{k+1}/Z_k; log Z(0) is the model's exact reference value. The ladder starts
    quadratic, is adapted during warmup (Syed et al. 2022) and frozen.

    Args:
        model: a thermodl model. beta: target inverse temperature (≥ 0; β = 0 returns log Z(0) exactly).
        key: PRNG key. n_replicas: ladder size R (default max(8, ⌈1.5·√dim⌉)).
        n_chains, n_steps, n_warmup, kernel, adapt_ladder, progress, **options: as in ``run_tempering``.

    Returns:
        ``LogZEstimate(method="pt")`` with diagnostics: swap_rate [R−1], round_trip_rate, round_trips, barrier,
        ladder, ladder_history, step_size, acceptance [R], n_divergent, rhat [R], n_systems, n_excluded,
        pair_log_ratio, pair_stderr, reliable, reasons, unreliable. ``reliable`` is False (with ``reasons`` and a
        ``RuntimeWarning``) when a rule of ``engine.reliability`` fails (``pt_reasons``): fewer than 20 round
        trips per system in production, a system without any, a neighbouring pair swapping < 5 %, R-hat of E
        above 1.1 at some slot, fewer than 4 finite systems, excluded systems.
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
        "swap_rate": res.swap_rate, "round_trip_rate": res.round_trip_rate,
        "round_trips": int(np.sum(res.round_trips)), "barrier": res.barrier, "ladder": res.betas,
        "ladder_history": res.ladder_history, "step_size": res.step_size,
        "acceptance": res.acceptance_rate().mean, "n_divergent": int(np.sum(res.n_divergent)),
        "rhat": res.rhat("energy"), "kernel": res.kernel, **info,
    }
    reasons = pt_reasons(res)
    if not math.isfinite(stderr):
        reasons.append("non-finite error bar")
    if info["n_excluded"]:
        reasons.append(f"{info['n_excluded']} PT systems had non-finite energies (excluded)")
    reliable = not reasons
    diagnostics.update(reliable=reliable, reasons=list(reasons), unreliable=not reliable)
    if not reliable:
        rel.warn_unreliable(f"PT at beta={beta:g}", reasons)
    return LogZEstimate(log_z0 + value, stderr, "pt", beta, diagnostics, reliable=reliable, reasons=tuple(reasons))


def pt_reasons(res: EnsembleResult) -> list[str]:
    """The rules of ``engine.reliability`` for a parallel-tempering run without a disorder axis: round trips per
    system and swap bottlenecks (mixing across the ladder), R-hat of E at every slot over independent systems.
    Kernel acceptance is not checked on its own: a frozen cold slot is fine while swaps feed it, which the
    round-trip rule measures."""
    tot = obs.split_moments_total(res.energy)
    mu = np.asarray(tot.mean, np.float64)
    count = np.broadcast_to(np.asarray(tot.count, np.float64), mu.shape)
    var = np.asarray(tot.m2, np.float64) / np.maximum(count - 1, 1)
    T = len(res.betas)
    mu, var = mu.reshape(T, -1), var.reshape(T, -1)
    bad = np.asarray(res.nonfinite, bool).reshape(T, -1)
    mu, var = np.where(bad, np.nan, mu), np.where(bad, np.nan, var)
    rhat = np.asarray(res.rhat("energy"), np.float64).reshape(T, -1).max(axis=1)
    n_used = np.isfinite(mu).sum(axis=1)
    reasons, _ = rel.equilibrium_reasons(res.betas, rhat, np.asarray(res.acceptance_rate().mean), mu, var, n_used,
                                         what="PT systems", check_frozen=False)
    return rel.round_trip_reasons(res.round_trips, res.swap_rate, res.betas, res.n_steps) + reasons
