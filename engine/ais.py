"""Annealed importance sampling estimates of log Z(β) with honest error bars.

Reference: R. M. Neal, "Annealed importance sampling", Statistics and Computing 11, 125 (2001); the sigmoid
schedule of R. Grosse, C. Maddison, R. Salakhutdinov, "Annealing between distributions by averaging moments",
NIPS 2013 (§5); effective sample size of importance weights: A. Kong, J. S. Liu, W. H. Wong, JASA 89, 278 (1994).

Every chain starts from an exact draw of the β = 0 ensemble (``model.sample_reference``) and is annealed along
0 = β_0 < β_1 < ... < β_K = β by the engine's one annealing loop (``engine.annealing``: fixed schedule, no
resampling; weight increment −(β_k − β_{k−1})·E, then ``n_sweeps`` transitions at β_k). Then

    log Z(β) = log Z(0) + log mean_c exp(log w_c),

and, the chains being independent, the delta-method standard error of the log of a mean of weights is
sd(w)/(√n · mean(w)) (computed on max-normalised weights). Chains whose final log weight is NaN are excluded and
counted (``n_excluded``), never averaged.

Reliability (``LogZEstimate.reliable`` / ``.reasons``, also in diagnostics; ``unreliable`` = not reliable; a
``RuntimeWarning`` when not reliable): the weights' ESS = (Σw)²/Σw² must reach
``engine.annealing.min_reliable_ess(n)`` = max(10, √2·n^{3/4}) (derived there from log-normal weights: below it the
sample variance that gives the error bar is itself off by more than 1/2; e.g. 91 of 256 chains, 54 of 128) — a
weight ESS of a few percent is NOT reliable (measured: ESS 14/256 gave z = +3.3 under the old 1 % rule). Also
flagged: NaN weights, a non-finite error bar, and frozen transitions (mean acceptance below 1 % over the last
quarter of the temperatures: the chains stop equilibrating and the weights stop telling how far they lag behind).

Step sizes (continuous kernels with a target acceptance, e.g. HMC): unless given, ε is adapted from the POPULATION
of chains inside the loop (log ε += ā − target after every sweep, ā the chain-mean acceptance; 10 adaptation
steps at β = 0 first, which keep the exact β = 0 draws exact) — no pilot run (the old pilot, 64 chains × 8
updates per temperature, made runs 3.6× slower for no accuracy gain). ε then depends on all chains' past, which
couples the chains by O(1/n): the estimator is consistent with an O(1/n) bias, as adaptive SMC is.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np

from . import annealing
from .annealing import log_weights_estimate, min_reliable_ess
from .logz_estimate import LogZEstimate
from .reliability import warn_unreliable
from .validate import check_beta, check_betas, check_choice, check_positive_int

__all__ = [
    "AISResult",
    "ais_schedule",
    "run_ais",
    "ais_log_partition",
    "log_weights_estimate",
    "min_reliable_ess",
    "FROZEN_ACCEPTANCE",
]

FROZEN_ACCEPTANCE = 0.01
SCHEDULES = ("sigmoid", "geometric", "linear")
_TRACE_COUNTS = annealing._TRACE_COUNTS  # compilations of the shared loop (tests check for recompiles)


class AISResult(NamedTuple):
    """Raw output of ``run_ais``.

    Fields:
        log_weights: float64 [chains] — final log importance weights log w_c (log Z(β)/Z(0) estimators).
        schedule: float64 [K+1] — the β schedule, from 0 to β.
        step_size: float64 [K+1] — the step size used at each β (NaN for discrete kernels).
        acceptance: float64 [K] — chain-averaged acceptance probability of the transitions at β_1..β_K.
        n_divergent: int [chains] — divergent transitions per chain.
        kernel: the kernel used.
        raw: the ``engine.annealing.AnnealResult`` of the run (one lane, leading run axis dropped).
    """

    log_weights: np.ndarray
    schedule: np.ndarray
    step_size: np.ndarray
    acceptance: np.ndarray
    n_divergent: np.ndarray
    kernel: str
    raw: Any = None


def ais_schedule(beta: float, n_temperatures: int, schedule: str = "sigmoid", delta: float = 4.0) -> np.ndarray:
    """An annealing schedule of ``n_temperatures`` points from 0 to ``beta`` (both included).

    ``linear``: β k/K. ``geometric``: 0 followed by a geometric sequence from β·10⁻⁴ to β. ``sigmoid`` (Grosse et
    al. 2013): β·(σ(δ(2k/K − 1)) − σ(−δ)) / (σ(δ) − σ(−δ)) — dense at both ends.

    Returns:
        float64 [n_temperatures].
    """
    beta = check_beta(beta, "beta")
    n = check_positive_int(n_temperatures, "n_temperatures")
    if n < 2:
        raise ValueError(f"n_temperatures must be at least 2 (0 and beta), got {n}")
    check_choice("schedule", schedule, SCHEDULES)
    t = np.linspace(0.0, 1.0, n)
    if schedule == "linear":
        s = t
    elif schedule == "geometric":
        s = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, n - 1)]) if n > 2 else t
    else:
        sig = 1.0 / (1.0 + np.exp(-delta * (2.0 * t - 1.0)))
        s = (sig - sig[0]) / (sig[-1] - sig[0])
    s[0], s[-1] = 0.0, 1.0
    return beta * s


def _resolve_schedule(beta, n_temperatures, schedule) -> np.ndarray:
    if isinstance(schedule, str):
        return ais_schedule(beta, n_temperatures, schedule)
    sched = check_betas(schedule, "schedule", increasing=True, start_at_zero=True)
    if sched.size < 2:
        raise ValueError(f"schedule must hold at least 2 points, got {sched.size}")
    if not math.isclose(sched[-1], beta, rel_tol=1e-9, abs_tol=1e-12):
        raise ValueError(f"schedule must end at beta={beta!r}, got schedule[-1] = {sched[-1]!r}")
    return sched


def run_ais(
    model: Any,
    schedule,
    *,
    key,
    n_chains: int = 256,
    n_sweeps: int = 1,
    kernel: str = "auto",
    step_size=None,
    n_pilot: int | None = None,
    n_adapt: int | None = None,
    **kernel_options,
) -> AISResult:
    """Anneal ``n_chains`` independent chains along ``schedule`` (float [K+1], 0 to β) and return log weights.

    Args:
        model: a thermodl model.
        schedule: float [K+1], strictly increasing, starting at 0 (traced: a new schedule of the same length
            never recompiles).
        key: ``jax.random.key`` (or int seed).
        n_chains: independent annealing chains.
        n_sweeps: transitions per temperature.
        kernel: see ``engine.kernel_binding``.
        step_size: scalar or [K+1] (fixed); default: adapted from the population of chains (kernels with a
            target acceptance) or the kernel default.
        n_pilot, n_adapt: accepted for backwards compatibility and ignored (there is no pilot run any more).
        **kernel_options: e.g. ``num_integration_steps`` for HMC.

    Returns:
        ``AISResult``.
    """
    sched = check_betas(schedule, "schedule", increasing=True, start_at_zero=True)
    if sched.size < 2:
        raise ValueError(f"schedule must hold at least 2 points, got {sched.size}")
    n_chains = check_positive_int(n_chains, "n_chains")
    n_sweeps = check_positive_int(n_sweeps, "n_sweeps")
    if n_pilot is not None or n_adapt is not None:
        warnings.warn("run_ais: n_pilot / n_adapt are ignored (step sizes adapt from the population; no pilot run)",
                      DeprecationWarning, stacklevel=2)
    spec, params = annealing.prepare(model, key=key, beta=float(sched[-1]), kernel=kernel,
                                     n_particles=max(n_chains, 2), n_sweeps=n_sweeps, schedule=sched,
                                     resample=False, step_size=step_size, options=kernel_options)
    raw = annealing.anneal(model, params, spec, n_runs=1)
    one = type(raw)(*({k: x[0] for k, x in v.items()} if isinstance(v, dict) else v[0] for v in raw))
    eps = np.asarray(one.step_size, np.float64)
    return AISResult(
        log_weights=np.asarray(one.log_weights, np.float64)[:n_chains],
        schedule=sched,
        step_size=np.concatenate([eps[:1], eps]),
        acceptance=np.asarray(one.acceptance, np.float64),
        n_divergent=np.asarray(one.n_divergent_particle)[:n_chains],
        kernel=spec.kernel,
        raw=one,
    )


def ais_log_partition(
    model: Any,
    beta: float,
    *,
    key,
    n_chains: int = 256,
    n_temperatures: int = 200,
    schedule="sigmoid",
    n_sweeps: int = 1,
    kernel: str = "auto",
    step_size=None,
    **options,
) -> LogZEstimate:
    """log Z(β) by annealed importance sampling from the β = 0 reference (Neal 2001).

    Args:
        model: a thermodl model.
        beta: target inverse temperature (≥ 0).
        key: ``jax.random.key`` (or int seed).
        n_chains: independent annealing chains (the error bar comes from their spread).
        n_temperatures: points of the schedule including 0 and β (ignored for an explicit schedule).
        schedule: ``"sigmoid"`` | ``"geometric"`` | ``"linear"`` or an explicit float [K+1] array from 0 to β.
        n_sweeps: transitions per temperature.
        kernel, step_size, **options: see ``run_ais`` (kernel options).

    Returns:
        ``LogZEstimate(method="ais")`` with ``reliable`` / ``reasons``; diagnostics: ``ess``, ``ess_fraction``,
        ``min_reliable_ess``, ``n_chains``, ``n_excluded`` (NaN weights), ``reliable``, ``reasons``,
        ``unreliable`` (= not reliable), ``n_temperatures``, ``mean_acceptance``, ``min_acceptance``,
        ``late_acceptance``, ``n_divergent``, ``kernel``, ``log_weight_std``, ``step_size_range``.
    """
    beta = check_beta(beta, "beta")
    sched = _resolve_schedule(beta, n_temperatures, schedule)
    log_z0 = float(model.log_reference_partition())
    if beta == 0.0:
        return LogZEstimate(log_z0, 0.0, "ais", 0.0, {"n_chains": 0, "note": "beta = 0: log Z(0) is exact",
                                                       "reliable": True, "reasons": [], "unreliable": False})
    res = run_ais(model, sched, key=key, n_chains=n_chains, n_sweeps=n_sweeps, kernel=kernel,
                  step_size=step_size, **options)
    value, stderr, ess, n_excl = log_weights_estimate(res.log_weights)
    n_used = res.log_weights.size - n_excl
    frac = ess / n_used if n_used else 0.0
    need = min_reliable_ess(n_used)
    k = res.acceptance.size
    late = float(np.nanmean(res.acceptance[k - max(1, k // 4):])) if np.any(np.isfinite(res.acceptance)) \
        else math.nan
    reasons = []
    if not ess >= need:
        reasons.append(f"weight ESS {ess:.1f} of {n_used} chains ({frac:.1%}) is below {need:.0f} = max(10, "
                       "sqrt(2) n^(3/4)): a few chains dominate and the error bar is not trustworthy; use more "
                       "temperatures or chains")
    if not math.isfinite(stderr):
        reasons.append("non-finite error bar")
    if n_excl:
        reasons.append(f"{n_excl} chains had NaN weights (excluded from the mean)")
    if late < FROZEN_ACCEPTANCE:
        reasons.append(f"frozen transitions: mean acceptance {late:.2g} over the last quarter of the temperatures")
    reliable = not reasons
    if not reliable:
        warn_unreliable(f"AIS at beta={beta:g}", reasons)
    finite_lw = res.log_weights[np.isfinite(res.log_weights)]
    finite_eps = res.step_size[np.isfinite(res.step_size)]
    diagnostics = {
        "ess": ess,
        "ess_fraction": frac,
        "min_reliable_ess": need,
        "n_chains": int(res.log_weights.size),
        "n_excluded": n_excl,
        "reliable": reliable,
        "reasons": list(reasons),
        "unreliable": not reliable,
        "n_temperatures": int(sched.size),
        "n_sweeps": n_sweeps,
        "kernel": res.kernel,
        "mean_acceptance": float(np.nanmean(res.acceptance)),
        "min_acceptance": float(np.nanmin(res.acceptance)),
        "late_acceptance": late,
        "n_divergent": int(res.n_divergent.sum()),
        "log_weight_std": float(finite_lw.std()) if finite_lw.size > 1 else math.nan,
        "step_size_range": (float(finite_eps.min()), float(finite_eps.max())) if finite_eps.size else None,
    }
    return LogZEstimate(log_z0 + value, stderr, "ais", float(beta), diagnostics, reliable=reliable,
                        reasons=tuple(reasons))
