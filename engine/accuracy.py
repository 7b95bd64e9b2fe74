"""Accuracy targets: grow an estimator's budget until its honest error bar is ≤ ``tol`` and it calls itself reliable.

``log_partition(model, beta, tol=...)`` (``engine.api``) lands here. The loop runs rounds of one estimator; after
each round it reads the estimate's standard error and its reliability checks and PREDICTS the budget the next round
needs from the error's scaling, instead of doubling blindly:

* **SMC** (``engine.smc``; the default of ``method="auto"`` when no exact value exists). A *configuration* is
  (n_particles N, n_sweeps S, max_stages); its independent runs are POOLED across rounds (every run of one
  configuration is an unbiased Ẑ_r of Z(β)/Z(0) with its own key; all of them enter the mean, none is dropped).
  - per-run log Z spread sd_r > ``SD_GROW`` (0.35, below smc's 0.5 flag) or non-finite runs: the runs are too
    poor to average; sd_r ∝ 1/√N, so N ← N·(sd_r/``SD_TARGET``)² (×2 … ×16), new configuration;
  - runs disagree more than their own error bars (χ² check) or frozen particles: the kernel does not mix within a
    stage, S ← 2S, new configuration; stage cap hit: max_stages ← 2·max_stages;
  - the target counts as reached only with ≥ ``MIN_TOL_RUNS`` (16) runs in the pool: the spread of 8 runs is
    itself uncertain by ~25 %, too noisy to stop on;
  - otherwise stderr ≈ sd_r/√R, so R_needed = R·(stderr/tol)²·``MARGIN``; the missing runs are added to the pool
    (in batches of 8·2^j runs, so few distinct programs compile). If R_needed would exceed ``MAX_POOL_RUNS`` (64)
    the configuration is replaced by one with N·R_needed/16 particles (rounded up to a power of 2) and 16 runs
    (larger N also shrinks the O(1/N) bias of adaptive SMC).
* **AIS** (``engine.ais``): each round is a fresh run (AIS weights of different schedules are not poolable). Weight
  ESS too low: log-weight variance σ² ∝ 1/K, so K ← K·σ²/σ²_target with σ²_target = ½·ln(n^{1/4}/√2)
  (the ESS rule of ``annealing.min_reliable_ess``); else n ← n·(stderr/tol)²·MARGIN chains.
* **TI** / **PT** (``engine.ti``, ``engine.tempering``): fresh runs; the Monte Carlo error ∝ 1/√(steps), so
  n_steps ← n_steps·(stderr/tol)²·MARGIN; TI whose error bar is dominated by the quadrature error doubles n_betas.

Limits (checked BEFORE each round from the predicted cost, and after it; the first round always runs and a running
round is never interrupted, so a limit can be overshot by one round):
* ``max_time``: wall-clock seconds for the whole loop, compilation included (default ``DEFAULT_MAX_TIME`` = 600 s
  when a tol is given);
* ``max_budget``: total work in *particle-steps* — one kernel step (for discrete kernels one sweep over all sites)
  of one particle / chain / replica: SMC Σ R·N·S·(stages), AIS n·S·K, TI n_chains·n_steps·n_betas,
  PT n_chains·n_steps·n_replicas. None: no budget limit.
When a limit stops the loop before ``stderr ≤ tol`` and reliable, the last estimate is returned with
``reliable=False``, the reason "tolerance … not reached within max_time=…" and a ``RuntimeWarning``.

Diagnostics added: ``tol``, ``tol_reached``, ``max_time``, ``max_budget``, ``budget_used`` (particle-steps),
``budget_unit``, ``wall_s``, ``rounds`` (one dict per round: the configuration, runs in the pool, stderr, value,
reliable, reasons, work, seconds) and ``stop_reason``.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import jax
import numpy as np

from .logz_estimate import LogZEstimate
from .keys import as_key

__all__ = ["log_partition_to_tol", "check_tol", "TOL_METHODS", "DEFAULT_MAX_TIME", "MARGIN"]

TOL_METHODS = ("smc", "ais", "ti", "pt")
DEFAULT_MAX_TIME = 600.0
MARGIN = 1.3  # predicted budgets aim at stderr ≈ tol/√1.3: the stderr estimate itself is noisy
SD_GROW = 0.35
SD_TARGET = 0.2
MAX_POOL_RUNS = 64
BATCH_RUNS = 8
MAX_GROWTH = 16.0
MIN_TOL_RUNS = 16  # an SMC error bar from fewer runs is itself too noisy to stop on
BUDGET_UNIT = "particle-steps (one kernel step of one particle, chain or replica)"


def check_tol(tol: Any, name: str = "tol") -> float:
    """tol as a positive finite float, else ONE ValueError."""
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a positive finite number (nats), got {tol!r}")
    t = float(tol)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"{name} must be a positive finite number (nats), got {tol!r}")
    return t


def _check_limit(x: Any, name: str) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(float(x)) and float(x) > 0):
        raise ValueError(f"{name} must be a positive finite number or None, got {x!r}")
    return float(x)


def _pow2_at_least(x: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(x, 1.0))))


class _Clock:
    """Elapsed time and work against the limits; predicts whether a round of given work fits."""

    def __init__(self, max_time, max_budget):
        self.t0, self.max_time, self.max_budget = time.perf_counter(), max_time, max_budget
        self.work, self.sec_per_work, self.stopped_by = 0.0, None, None

    def elapsed(self):
        return time.perf_counter() - self.t0

    def record(self, work, seconds):
        self.work += work
        rate = seconds / max(work, 1.0)
        self.sec_per_work = rate if self.sec_per_work is None else min(self.sec_per_work, rate)

    def affordable(self, work) -> bool:
        return self.blocking(work) is None

    def blocking(self, work) -> str | None:
        """The limit a round of ``work`` particle-steps would exceed (predicted), or None."""
        if self.max_budget is not None and self.work + work > self.max_budget:
            self.stopped_by = f"max_budget={self.max_budget:g} particle-steps"
            return self.stopped_by
        if self.max_time is not None and self.sec_per_work is not None \
                and self.elapsed() + work * self.sec_per_work > self.max_time:
            self.stopped_by = f"max_time={self.max_time:g} s"
            return self.stopped_by
        return None

    def exhausted(self) -> str | None:
        if self.max_time is not None and self.elapsed() >= self.max_time:
            self.stopped_by = f"max_time={self.max_time:g} s"
            return self.stopped_by
        if self.max_budget is not None and self.work >= self.max_budget:
            self.stopped_by = f"max_budget={self.max_budget:g} particle-steps"
            return self.stopped_by
        return None

    def limit_text(self) -> str:
        parts = []
        if self.max_time is not None:
            parts.append(f"max_time={self.max_time:g} s")
        if self.max_budget is not None:
            parts.append(f"max_budget={self.max_budget:g} particle-steps")
        return " / ".join(parts) or "the growth limits"


# ----------------------------------------------------------------------------------------------------- SMC
def _concat(results):
    return type(results[0])(*jax.tree.map(lambda *a: np.concatenate([np.asarray(x) for x in a]), *results))


def _smc_rounds(model, beta, key, tol, clock, options):
    from . import smc
    from .kernel_binding import resolve_kernel

    opts = dict(options)
    n = int(opts.pop("n_particles", 128))
    r0 = int(opts.pop("n_runs", BATCH_RUNS))
    s = int(opts.pop("n_sweeps", 4))
    stages = int(opts.pop("max_stages", 500))
    kernel = opts.pop("kernel", "auto")
    target_ess = opts.pop("target_ess", 0.9)
    resampling = opts.get("resampling", "multinomial")
    log_z0 = float(model.log_reference_partition())
    pool, todo, rounds, n_call, mean_stages = [], max(r0, smc.MIN_RUNS), [], 0, 1.0
    while True:
        # one round: `todo` more runs of the current configuration, in batches of 8·2^j runs
        work_of = lambda runs: runs * n * s * mean_stages  # noqa: E731
        if rounds and not clock.affordable(work_of(todo)):
            if pool and clock.sec_per_work is not None:  # add as many runs to the pool as still fit
                fit = BATCH_RUNS * int(_affordable_runs(clock, work_of(1)) // BATCH_RUNS)
                todo = fit if fit >= BATCH_RUNS else 0
            else:
                todo = 0
            if todo == 0:
                return est, rounds, "limit"
        t = time.perf_counter()
        batches = [BATCH_RUNS * (1 << j) for j in range(20) if (-(-todo // BATCH_RUNS) >> j) & 1] \
            if todo >= BATCH_RUNS else [todo]
        for b in batches:
            res = smc.run_smc(model, beta, key=jax.random.fold_in(key, n_call), n_particles=n, n_runs=b,
                              kernel=kernel, n_sweeps=s, target_ess=target_ess, max_stages=stages, **opts)
            n_call += 1
            pool.append(res)
        seconds = time.perf_counter() - t
        work = sum(float(np.sum(p.n_stages)) * n * s for p in pool[-len(batches):])
        clock.record(work, seconds)
        res = _concat(pool)
        mean_stages = float(np.mean(res.n_stages))
        value, stderr, diag, reasons = smc.smc_reliability(res, resampling)
        diag.update(kernel=resolve_kernel(model, kernel), n_sweeps=s, target_ess=target_ess, max_stages=stages,
                    reliable=not reasons, reasons=list(reasons), unreliable=bool(reasons))
        est = LogZEstimate(log_z0 + value, stderr, "smc", float(beta), diag, reliable=not reasons,
                           reasons=tuple(reasons))
        runs = int(np.size(res.log_z))
        rounds.append(dict(n_particles=n, n_sweeps=s, max_stages=stages, n_runs=runs, new_runs=todo,
                           value=est.value, stderr=stderr, sd_log_z_runs=diag["sd_log_z_runs"],
                           reliable=est.reliable, reasons=list(reasons), work=work, wall_s=seconds,
                           elapsed_s=clock.elapsed()))
        if est.reliable and stderr <= tol and runs >= MIN_TOL_RUNS:
            return est, rounds, "tol"
        if clock.exhausted():
            return est, rounds, "limit"
        # the next configuration, predicted from this one
        sd = diag["sd_log_z_runs"]
        bad_runs = not math.isfinite(sd) or sd > SD_GROW or not np.all(np.isfinite(res.log_z))
        mixing = (resampling == "multinomial" and diag["chi2_p"] < smc.CHI2_P) \
            or diag["late_acceptance"] < smc.FROZEN_ACCEPTANCE
        if bad_runs or mixing or diag["hit_cap"]:
            if bad_runs:
                grow = (sd / SD_TARGET) ** 2 if math.isfinite(sd) else 4.0
                n = int(n * min(max(grow, 2.0), MAX_GROWTH))
            if mixing:
                s *= 2
            if diag["hit_cap"]:
                stages *= 2
            pool, todo = [], max(r0, smc.MIN_RUNS)
            continue
        need = runs * (stderr / tol) ** 2 * MARGIN if math.isfinite(stderr) and stderr > 0 else 2.0 * runs
        need = max(need, runs + BATCH_RUNS, MIN_TOL_RUNS)
        if need <= MAX_POOL_RUNS:
            todo = BATCH_RUNS * math.ceil((need - runs) / BATCH_RUNS)
        else:  # the same work as fewer runs of more particles: runs·N ∝ 1/stderr²
            n = _pow2_at_least(n * min(need / 16.0, MAX_GROWTH * runs / 16.0))
            pool, todo = [], 16


def _affordable_runs(clock, work_per_run):
    room = []
    if clock.max_budget is not None:
        room.append((clock.max_budget - clock.work) / work_per_run)
    if clock.max_time is not None:
        room.append((clock.max_time - clock.elapsed()) / (work_per_run * clock.sec_per_work))
    return max(0.0, min(room)) if room else math.inf


# ----------------------------------------------------------------------------------------- AIS, TI, PT
def _fresh_rounds(method, model, beta, key, tol, clock, options):
    """Fresh runs of ``method`` with a budget predicted from the previous run's error bar and diagnostics."""
    from .api import _estimator

    fn = _estimator(method)
    opts = dict(options)
    if method == "ais":
        cfg = {"n_chains": int(opts.pop("n_chains", 256)), "n_temperatures": int(opts.pop("n_temperatures", 100))}
        n_sweeps = int(opts.get("n_sweeps", 1))
        work_of = lambda c: c["n_chains"] * c["n_temperatures"] * n_sweeps  # noqa: E731
    elif method == "ti":
        cfg = {"n_chains": int(opts.pop("n_chains", 16)), "n_steps": int(opts.pop("n_steps", 1000)),
               "n_betas": int(opts.pop("n_betas", 32))}
        work_of = lambda c: c["n_chains"] * c["n_steps"] * c["n_betas"] * 1.25  # noqa: E731 (pilot run)
    else:
        cfg = {"n_chains": int(opts.pop("n_chains", 16)), "n_steps": int(opts.pop("n_steps", 2000))}
        n_rep = opts.get("n_replicas")
        work_of = lambda c: c["n_chains"] * c["n_steps"] * (n_rep or 16)  # noqa: E731
    rounds, est = [], None
    for i in range(64):
        if rounds and not clock.affordable(work_of(cfg)):
            return est, rounds, "limit"
        t = time.perf_counter()
        with warnings.catch_warnings():  # the loop reports unreliability once, at the end
            warnings.simplefilter("ignore", RuntimeWarning)
            est = fn(model, beta, key=jax.random.fold_in(key, i), **cfg, **opts)
        seconds = time.perf_counter() - t
        clock.record(work_of(cfg), seconds)
        rounds.append(dict(**cfg, value=est.value, stderr=est.stderr, reliable=est.reliable,
                           reasons=list(est.reasons), work=work_of(cfg), wall_s=seconds, elapsed_s=clock.elapsed()))
        if est.reliable and est.stderr <= tol:
            return est, rounds, "tol"
        if clock.exhausted():
            return est, rounds, "limit"
        err = est.stderr if math.isfinite(est.stderr) and est.stderr > 0 else 2.0 * tol
        more = min(max((err / tol) ** 2 * MARGIN, 1.5), MAX_GROWTH)
        d = est.diagnostics
        if method == "ais":
            nc = cfg["n_chains"]
            ess_low = not d.get("ess", 0.0) >= d.get("min_reliable_ess", math.inf)
            if ess_low or not est.reliable:
                var = d.get("log_weight_std", math.nan) ** 2
                target = max(0.25, 0.5 * math.log(max(nc, 16) ** 0.25 / math.sqrt(2.0)))
                grow = var / target if math.isfinite(var) else 4.0
                cfg["n_temperatures"] = int(cfg["n_temperatures"] * min(max(grow, 2.0), MAX_GROWTH))
            else:
                cfg["n_chains"] = 64 * math.ceil(nc * more / 64)  # few distinct shapes: few compilations
        elif method == "ti" and d.get("quadrature_dominated", False):
            cfg["n_betas"] = 2 * cfg["n_betas"] - 1
            mc = d.get("mc_stderr", err)
            if mc > tol / math.sqrt(2.0):
                cfg["n_steps"] = int(cfg["n_steps"] * min(max(2 * (mc / tol) ** 2 * MARGIN, 1.5), MAX_GROWTH))
        else:
            cfg["n_steps"] = int(cfg["n_steps"] * more)
    return est, rounds, "limit"


# --------------------------------------------------------------------------------------------------- entry
def log_partition_to_tol(model: Any, beta: float, method: str, *, key, tol: float, max_time=None,
                         max_budget=None, **options) -> LogZEstimate:
    """log Z(β) by ``method`` with a budget grown until stderr ≤ tol and reliable, or a limit (module doc).

    Args:
        model: a thermodl model. beta: checked β ≥ 0. method: "smc" | "ais" | "ti" | "pt" (resolved, not "auto").
        key: ``jax.random.key`` or int seed (round i uses fold_in(key, i)).
        tol: target standard error of log Z in nats (> 0).
        max_time: wall-clock seconds (default ``DEFAULT_MAX_TIME``); max_budget: particle-steps (default None).
        **options: the estimator's options; budget options (``n_particles``, ``n_runs``, ``n_sweeps``,
            ``n_chains``, ``n_temperatures``, ``n_steps``, ``n_betas``) give the FIRST round's budget.

    Returns:
        ``LogZEstimate`` of the last round (for SMC: the pool of all runs of the last configuration), with the
        diagnostics of the module doc. ``reliable=False`` (+ a ``RuntimeWarning``) when the target was not met.

    Raises:
        ValueError: bad tol / limits, or a method that does not support a tolerance.
    """
    tol = check_tol(tol)
    if method not in TOL_METHODS:
        raise ValueError(f"tol is not supported for method {method!r}; use one of: {', '.join(TOL_METHODS)} "
                         "(or method='auto')")
    max_time = _check_limit(max_time, "max_time")
    max_budget = _check_limit(max_budget, "max_budget")
    if max_time is None:
        max_time = DEFAULT_MAX_TIME
    if float(beta) == 0.0:  # log Z(0) is the model's exact reference value
        return LogZEstimate(float(model.log_reference_partition()), 0.0, method, 0.0,
                            {"note": "beta = 0: log Z(0) is exact", "tol": tol, "tol_reached": True, "rounds": [],
                             "reliable": True, "reasons": [], "unreliable": False})
    clock = _Clock(max_time, max_budget)
    key = as_key(key)
    if method == "smc":
        est, rounds, why = _smc_rounds(model, beta, key, tol, clock, options)
    else:
        est, rounds, why = _fresh_rounds(method, model, beta, key, tol, clock, options)
    reached = why == "tol"
    reasons = list(est.reasons)
    if not reached:
        spent = clock.exhausted()  # None: stopped because the NEXT round was predicted to exceed a limit
        limit = spent or clock.stopped_by or clock.limit_text()
        reasons.append(f"tolerance {tol:g} not reached within {limit} (stderr = {est.stderr:.3g}, reliable = "
                       f"{est.reliable} after {len(rounds)} round(s), {clock.elapsed():.1f} s, {clock.work:.3g} "
                       "particle-steps" + ("" if spent else "; the next round was predicted to exceed it") + ")")
    diag = dict(est.diagnostics)
    diag.update(tol=tol, tol_reached=reached, max_time=max_time, max_budget=max_budget, budget_used=clock.work,
                budget_unit=BUDGET_UNIT, wall_s=clock.elapsed(), rounds=rounds,
                stop_reason="stderr <= tol and reliable" if reached else reasons[-1],
                reliable=reached, reasons=reasons, unreliable=not reached)
    if not reached:
        warnings.warn(f"log_partition({method}) at beta={beta:g}: " + "; ".join(reasons), RuntimeWarning,
                      stacklevel=3)
    return LogZEstimate(est.value, est.stderr, est.method, est.beta, diag, reliable=reached,
                        reasons=tuple(reasons))
