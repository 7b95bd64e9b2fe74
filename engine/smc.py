"""Adaptive tempered SMC / population annealing: log Z(β) with an error bar from independent runs.

References: P. Del Moral, A. Doucet, A. Jasra, JRSS B 68, 411 (2006); J. Machta, PRE 82, 026704 (2010);
Y. Zhou, A. M. Johansen, J. A. D. Aston, JCGS 25, 701 (2016) (CESS schedule); A. Lee, N. Whiteley, Biometrika 105,
609 (2018) (single-run variance). The loop itself is ``engine.annealing`` (shared with AIS).

``smc_log_partition`` runs R independent SMC runs (lanes) of N particles each, in one compiled program:

* value: log Z(0) + log( (1/R) Σ_r Ẑ_r ) — each Ẑ_r is unbiased for Z(β)/Z(0), so their mean is too (averaging
  log Ẑ_r instead would carry each run's Jensen bias −Var(log Ẑ_r)/2).
* stderr: delta method over the runs, sd_r(Ẑ_r)/(√R · mean_r Ẑ_r) (≈ sd_r(log Ẑ_r)/√R when the runs agree).
  This needs nothing from inside a run (no assumption on resampling or mixing), only that runs are independent.
* ``stderr_single_run``: the Lee–Whiteley estimate pooled over the runs, √(Σ_r V̂_r Ẑ_r²)/Σ_r Ẑ_r (diagnostic).

``reliable`` is False (and ``reasons`` says why) when:
  - fewer than ``MIN_RUNS`` (4) runs: the spread of 1–3 numbers is no error bar;
  - any run ended non-finite, or particles produced NaN energies;
  - the runs disagree: sd_r(log Ẑ_r) > ``MAX_RUN_LOG_SD`` (0.5). Then the mean of Ẑ_r is dominated by one or two
    runs (log-normal regime: the delta-method error of the sample variance exceeds ~1/2 for R ≲ 16), the
    estimate is biased low and its error bar too small; more particles per run are needed;
  - the runs disagree more than their own single-run error bars say: χ² = Σ_r (log Ẑ_r − mean)² / mean_r V̂_r
    above the 99.9 % point of χ²_{R−1} (multinomial resampling only, for which V̂ is valid; measured: with
    systematic resampling V̂ understated the between-run variance 2–4× on Ising 4×4 and an RBM, with multinomial
    it matched);
  - the stage cap was hit (the last jump to β was forced, the CESS target was not kept);
  - frozen particles: population-mean acceptance below ``FROZEN_ACCEPTANCE`` (1 %) over the last quarter of the
    stages (resampling then only duplicates configurations that never move again).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from . import annealing
from .annealing import AnnealResult, log_weights_estimate
from .kernel_binding import resolve_kernel
from .logz_estimate import LogZEstimate
from .reliability import warn_unreliable
from .validate import check_beta, check_betas, check_positive_int

__all__ = ["smc_log_partition", "run_smc", "population_anneal", "PopulationAnnealing", "smc_reliability"]

MIN_RUNS = 4
MAX_RUN_LOG_SD = 0.5
FROZEN_ACCEPTANCE = 0.01
CHI2_P = 1e-3


def _check_fraction(x, name, lo=0.0, hi=1.0):
    x = float(x)
    if not (math.isfinite(x) and lo < x < hi):
        raise ValueError(f"{name} must be in ({lo}, {hi}), got {x!r}")
    return x


def run_smc(
    model: Any,
    beta: float,
    *,
    key,
    n_particles: int = 256,
    n_runs: int = 8,
    kernel: str = "auto",
    n_sweeps: int = 4,
    target_ess: float = 0.9,
    resample_threshold: float = 0.5,
    resampling: str = "multinomial",
    max_stages: int = 500,
    schedule=None,
    step_size=None,
    observables: dict | None = None,
    n_measure: int | None = None,
    disorder_axis: bool = False,
    run_block: int | None = None,
    mesh=None,
    **options,
) -> AnnealResult:
    """Raw SMC runs: ``n_runs`` independent populations of ``n_particles`` (× D stacked models).

    Args:
        model: a thermodl model, or a stack of D models (leaves [D, ...]) with ``disorder_axis=True``.
        beta: target inverse temperature (> 0).
        key: ``jax.random.key`` or int seed; run r (of disorder sample d) uses fold(key, r) (fold(key, d, r)).
        n_particles: N per run. n_runs: R independent runs.
        kernel: any ``engine.kernel_binding`` kernel; ``n_sweeps`` of its steps rejuvenate the particles at each stage.
        target_ess: the adaptive schedule picks β_k so the conditional ESS of the incremental weights is
            ``target_ess``·N (Zhou et al. 2016). 0.9 loses ~10 % ESS per stage (χ² ≈ 0.11 per stage).
        resample_threshold: resample when ESS/N falls below it (1.0: at every stage, population annealing).
        resampling: "multinomial" (default: the one the Lee–Whiteley single-run variance is proven for, so the
            runs can be checked against it) or "systematic" (lower variance; the check is then skipped).
            max_stages: cap of the adaptive schedule (the last jump is forced to β; flagged).
        schedule: None (adaptive) or a fixed float [K+1] from 0 to β.
        step_size: None (population-adapted for kernels with a target acceptance) or fixed.
        observables: {name: fn(x [dim]) -> []} averaged over the particles at the last stage.
        n_measure: sweeps at the end of each stage averaged into ⟨E⟩ and observables (default ⌈n_sweeps/2⌉).
        run_block, mesh: see ``engine.annealing.anneal`` (blocking / sharding of the run axis).
        **options: kernel options (floats/arrays traced: a new value never recompiles).

    Returns:
        ``engine.annealing.AnnealResult`` with leading axes [R] (or [D, R]).
    """
    beta = check_beta(beta, "beta")
    n_particles = check_positive_int(n_particles, "n_particles")
    if n_particles < 2:
        raise ValueError(f"n_particles must be at least 2, got {n_particles}")
    n_runs = check_positive_int(n_runs, "n_runs")
    n_sweeps = check_positive_int(n_sweeps, "n_sweeps")
    max_stages = check_positive_int(max_stages, "max_stages")
    target_ess = _check_fraction(target_ess, "target_ess")
    resample_threshold = _check_fraction(resample_threshold, "resample_threshold", 0.0, 1.0 + 1e-9)
    if schedule is not None:
        schedule = check_betas(schedule, "schedule", increasing=True, start_at_zero=True)
        if schedule.size < 2 or not math.isclose(schedule[-1], beta, rel_tol=1e-9, abs_tol=1e-12):
            raise ValueError(f"schedule must hold at least 2 points and end at beta={beta!r}")
    one = model
    if disorder_axis:
        import jax

        one = jax.tree.map(lambda a: a[0], model)
    spec, params = annealing.prepare(
        one, key=key, beta=beta, kernel=kernel, n_particles=n_particles, n_sweeps=n_sweeps, n_measure=n_measure,
        schedule=schedule, max_stages=max_stages, resample=True, resampling=resampling, target_cess=target_ess,
        resample_threshold=resample_threshold, step_size=step_size, observables=observables, options=options)
    return annealing.anneal(model, params, spec, n_runs=n_runs, disorder_axis=disorder_axis, run_block=run_block,
                            mesh=mesh)


def smc_reliability(res: AnnealResult, resampling: str = "multinomial") -> tuple[float, float, dict, list[str]]:
    """(log Ẑ/Z(0), stderr, diagnostics, reasons) from the runs of ONE model ([R] fields); see the module doc."""
    log_z = np.asarray(res.log_z, np.float64)
    r = log_z.size
    value, stderr, ess_runs, n_bad = log_weights_estimate(log_z)
    reasons = []
    ok = np.isfinite(log_z)
    rel_var = np.asarray(res.log_z_rel_var, np.float64)
    z = np.exp(log_z[ok] - log_z[ok].max()) if ok.any() else np.zeros(0)
    stderr_single = float(np.sqrt(np.sum(rel_var[ok] * z**2)) / z.sum()) if z.size else math.nan
    sd_runs = float(log_z[ok].std(ddof=1)) if ok.sum() > 1 else math.nan
    # between-run scatter against the mean single-run (Lee–Whiteley) variance: Σ_r (log Ẑ_r − mean)² / mean_r V̂_r
    # ~ χ²_{R−1}. The pooled V̂ is used because single V̂_r are noisy and can be ≤ 0 (the estimator is unbiased,
    # not positive). Only meaningful with multinomial resampling.
    v_bar = float(np.mean(rel_var[ok])) if ok.any() else math.nan
    chi2 = float(np.sum((log_z[ok] - log_z[ok].mean()) ** 2) / v_bar) if ok.sum() > 1 and v_bar > 0 else math.nan
    chi2_p = float(stats.chi2.sf(chi2, ok.sum() - 1)) if math.isfinite(chi2) else math.nan
    if r == 1:
        stderr = stderr_single
    if r < MIN_RUNS:
        reasons.append(f"only {r} run(s): at least {MIN_RUNS} independent runs are needed for an error bar")
    if n_bad or not np.all(ok):
        reasons.append(f"{int((~ok).sum())} of {r} runs ended with a non-finite log Z")
    if int(np.sum(res.n_nonfinite)):
        reasons.append(f"{int(np.sum(res.n_nonfinite))} particle-stages had NaN energies (weight 0)")
    if sd_runs > MAX_RUN_LOG_SD:
        reasons.append(f"runs disagree: sd of per-run log Z = {sd_runs:.3g} > {MAX_RUN_LOG_SD} (the mean of Z over "
                       "runs is dominated by a few runs); use more particles or sweeps per run")
    if resampling == "multinomial" and chi2_p < CHI2_P:
        reasons.append(f"runs disagree more than their own error bars say (chi2 = {chi2:.3g} on {ok.sum() - 1} dof, "
                       f"p = {chi2_p:.2g})")
    if np.any(res.hit_cap):
        reasons.append(f"stage cap hit in {int(np.sum(res.hit_cap))} of {r} runs (last jump to beta forced)")
    late = _late_acceptance(res)
    if late < FROZEN_ACCEPTANCE:
        reasons.append(f"frozen particles: acceptance {late:.2g} over the last quarter of the stages")
    diagnostics = {
        "n_runs": r,
        "n_particles": int(res.positions.shape[-2]),
        "log_z_runs": log_z.tolist(),
        "sd_log_z_runs": sd_runs,
        "stderr_between_runs": stderr if r > 1 else math.nan,
        "stderr_single_run": stderr_single,
        "chi2_runs": chi2,
        "chi2_p": chi2_p,
        "n_stages": np.asarray(res.n_stages).tolist(),
        "hit_cap": bool(np.any(res.hit_cap)),
        "n_resample": np.asarray(res.n_resample).tolist(),
        "min_ess_fraction": float(np.min(res.min_ess_fraction)),
        "final_ess_fraction": float(np.min(res.final_ess_fraction)),
        "mean_acceptance": float(np.nanmean(res.mean_acceptance)),
        "late_acceptance": late,
        "n_divergent": int(np.sum(res.n_divergent)),
        "n_nonfinite": int(np.sum(res.n_nonfinite)),
        "unique_fraction": float(np.mean(res.unique_fraction)),
        "schedule": _schedule(res, 0),
    }
    return value, stderr, diagnostics, reasons


def _schedule(res, r):
    b = np.asarray(res.betas)[r]
    return b[np.isfinite(b)].tolist()


def _late_acceptance(res) -> float:
    """Population-mean acceptance over the last quarter of the stages (mean over runs)."""
    acc = np.asarray(res.acceptance, np.float64).reshape(-1, res.acceptance.shape[-1])
    n = np.asarray(res.n_stages).reshape(-1)
    vals = [np.nanmean(a[max(0, k - max(1, k // 4)):k]) for a, k in zip(acc, n) if k > 0]
    return float(np.nanmean(vals)) if vals else math.nan


def smc_log_partition(
    model: Any,
    beta: float,
    *,
    key,
    n_particles: int = 256,
    n_runs: int = 8,
    kernel: str = "auto",
    n_sweeps: int = 4,
    target_ess: float = 0.9,
    **options,
) -> LogZEstimate:
    """log Z(β) by adaptive tempered SMC from the β = 0 reference, R independent runs of N particles.

    Args:
        model: a thermodl model. beta: target inverse temperature (≥ 0). key: ``jax.random.key`` or int seed.
        n_particles, n_runs, kernel, n_sweeps, target_ess, **options: see ``run_smc`` (also ``resample_threshold``,
            ``resampling``, ``max_stages``, ``schedule``, ``step_size``, ``run_block``, ``mesh``, kernel options).

    Returns:
        ``LogZEstimate(method="smc")`` with ``reliable`` / ``reasons`` (see the module doc); diagnostics:
        ``n_runs``, ``n_particles``, ``log_z_runs``, ``sd_log_z_runs``, ``stderr_between_runs``,
        ``stderr_single_run``, ``chi2_runs``, ``chi2_p``, ``n_stages``, ``schedule`` (run 0), ``hit_cap``,
        ``n_resample``, ``min_ess_fraction``, ``mean_acceptance``, ``late_acceptance``, ``n_divergent``,
        ``n_nonfinite``, ``unique_fraction``, ``reliable``, ``reasons``, ``unreliable``.
    """
    beta = check_beta(beta, "beta")
    log_z0 = float(model.log_reference_partition())
    if beta == 0.0:
        return LogZEstimate(log_z0, 0.0, "smc", 0.0, {"n_runs": 0, "note": "beta = 0: log Z(0) is exact",
                                                       "reliable": True, "reasons": [], "unreliable": False})
    res = run_smc(model, beta, key=key, n_particles=n_particles, n_runs=n_runs, kernel=kernel, n_sweeps=n_sweeps,
                  target_ess=target_ess, **options)
    value, stderr, diagnostics, reasons = smc_reliability(res, options.get("resampling", "multinomial"))
    reliable = not reasons
    diagnostics.update(kernel=resolve_kernel(model, kernel), n_sweeps=n_sweeps, target_ess=target_ess,
                       reliable=reliable, reasons=list(reasons), unreliable=not reliable)
    if not reliable:
        warn_unreliable(f"SMC at beta={beta:g}", reasons)
    return LogZEstimate(log_z0 + value, stderr, "smc", float(beta), diagnostics, reliable=reliable,
                        reasons=tuple(reasons))


# ------------------------------------------------------------------------------- population annealing on a grid
class PopulationAnnealing(NamedTuple):
    """Output of ``population_anneal`` for D disorder samples on a fixed β grid [K] (β_0 = 0).

    Fields (the field names of ``experiments.gardner.Annealing``, plus log Z):
        betas: float64 [K].
        mean_energy: float64 [D, K] — ⟨E⟩ at each β (column 0: the mean over the exact β = 0 draws), averaged over
            runs of the particle-weighted mean over the last ``n_measure`` sweeps of each stage.
        mean_energy_stderr: float64 [D, K] — with n_runs ≥ 2 the between-run standard error (honest); with one
            run the particle-to-particle sd/√N, which understates the error (particles share ancestors).
        observables: {name: float64 [D]} — at the last β (mean over runs).
        acceptance: float64 [K] — mean acceptance per stage over samples and runs (NaN at β = 0).
        step_size: float64 [K] — mean step size per stage (NaN for discrete kernels and at β = 0).
        n_nonfinite: int — particle-stages with a NaN energy.
        log_z: float64 [D] — log Z(β_K) − log Z(0) per sample (log mean over runs of Ẑ_r).
        log_z_stderr: float64 [D] — between-run delta-method stderr (NaN with one run).
        raw: the ``AnnealResult`` ([D, R] fields).
    """

    betas: np.ndarray
    mean_energy: np.ndarray
    mean_energy_stderr: np.ndarray
    observables: dict
    acceptance: np.ndarray
    step_size: np.ndarray
    n_nonfinite: int
    log_z: np.ndarray
    log_z_stderr: np.ndarray
    raw: AnnealResult


def population_anneal(
    models: Any,
    betas,
    *,
    key,
    n_particles: int,
    n_sweeps: int,
    n_measure: int | None = None,
    n_runs: int = 1,
    kernel: str = "auto",
    observables: dict | None = None,
    resample_threshold: float = 1.0,
    step_size=None,
    disorder_axis: bool = True,
    run_block: int | None = None,
    mesh=None,
    **options,
) -> PopulationAnnealing:
    """Population annealing (Hukushima & Iba 2003; Machta 2010) of D stacked models up a fixed β grid.

    Each stage: reweight by exp(−Δβ E), resample (every stage by default: ``resample_threshold=1.0``), then
    ``n_sweeps`` kernel steps at β_k of which the last ``n_measure`` are averaged into ⟨E⟩ (and observables).
    One compiled program for all samples × runs × stages.

    Args:
        models: stack of D models (leaves [D, ...]); ``disorder_axis=False`` for a single model (D = 1).
        betas: float [K] increasing from 0.
        key, n_particles, n_sweeps, n_measure, n_runs, kernel, observables, step_size, run_block, mesh,
        **options: see ``run_smc``.

    Returns:
        ``PopulationAnnealing``.
    """
    betas = check_betas(betas, "betas", increasing=True, start_at_zero=True)
    if betas.size < 2:
        raise ValueError(f"betas must hold at least 2 points, got {betas.size}")
    res = run_smc(models, float(betas[-1]), key=key, n_particles=n_particles, n_runs=n_runs, kernel=kernel,
                  n_sweeps=n_sweeps, n_measure=n_measure, schedule=betas, step_size=step_size,
                  observables=observables, resample_threshold=resample_threshold, disorder_axis=disorder_axis,
                  run_block=run_block, mesh=mesh, **options)
    if not disorder_axis:
        import jax

        res = AnnealResult(*jax.tree.map(lambda a: np.asarray(a)[None], tuple(res)))
    e = np.asarray(res.mean_energy, np.float64)  # [D, R, K]
    n_runs = e.shape[1]
    mean_e = e.mean(axis=1)
    if n_runs > 1:
        se = e.std(axis=1, ddof=1) / math.sqrt(n_runs)
    else:
        se = np.sqrt(np.asarray(res.energy_var, np.float64)[:, 0] / res.positions.shape[-2])
        se[:, 0] = 0.0
    log_z = np.zeros(e.shape[0])
    log_z_se = np.full(e.shape[0], np.nan)
    for d in range(e.shape[0]):
        log_z[d], s, _, _ = log_weights_estimate(res.log_z[d])
        log_z_se[d] = s if n_runs > 1 else math.nan
    with warnings.catch_warnings():  # all-NaN step sizes of discrete kernels
        warnings.simplefilter("ignore", RuntimeWarning)
        acc = np.concatenate([[np.nan], np.nanmean(np.asarray(res.acceptance, np.float64), axis=(0, 1))])
        step = np.concatenate([[np.nan], np.nanmean(np.asarray(res.step_size, np.float64), axis=(0, 1))])
    obs = {k: np.asarray(v, np.float64).mean(axis=1) for k, v in res.observables.items()}
    return PopulationAnnealing(np.asarray(betas, np.float64), mean_e, se, obs, acc, step,
                               int(np.sum(res.n_nonfinite)), log_z, log_z_se, res)
