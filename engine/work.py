"""Work, free energy and efficiency of annealing β, and the thermodynamic length of the path.

References: C. Jarzynski, "Nonequilibrium equality for free energy differences", PRL 78, 2690 (1997);
G. E. Crooks, "Measuring thermodynamic length", PRL 99, 100602 (2007); R. M. Neal, "Annealed importance
sampling", Stat. Comput. 11, 125 (2001) (the same loop: AIS's log weight is −W). The framing "efficiency of
learning as annealing" follows C. Chinea Manrique de Lara, "On the theory of deep learning: a theoretical physics
perspective (Part I)", Physica A 632, 129308 (2023), whose full text we do not have: its claims are
operationalised here with the standard, checkable quantities below.

Dimensionless convention (k_B T = 1/β, β the control parameter). A chain equilibrated at β_0 is annealed along
β_0, β_1, ..., β_K by ``engine.annealing`` (fixed schedule, no resampling): at stage k the energy E(w_k) of its
current state is recorded, β jumps to β_{k+1}, then ``n_sweeps`` kernel steps at β_{k+1}. Its work is

    W = Σ_k (β_{k+1} − β_k) E(w_k)          (= −log AIS weight),

and with ΔF ≡ −log Z(β_K)/Z(β_0) (the change of βF, dimensionless) Jarzynski's equality ⟨e^{−W}⟩ = e^{−ΔF} and
the second law ⟨W⟩ ≥ ΔF hold for any K and any n_sweeps. Cooling (β_K > β_0) and heating (β_K < β_0) use the
same formulas; W and ΔF change sign with Δβ.

* Jarzynski estimate ΔF̂ = −log mean_c e^{−W_c}, delta-method stderr. It is biased upwards when a few chains
  dominate e^{−W}: flagged (``reliable=False``) when the weight ESS is below ``annealing.min_reliable_ess(n)``.
  On the sample itself mean W ≥ ΔF̂ always (Jensen), so W_diss = ⟨W⟩ − ΔF̂ ≥ 0 in every run by construction; the
  physical check is ⟨W⟩ ≥ ΔF_exact.
* Efficiency η: the reversible work over the actual work, oriented so that η ≤ 1 with η = 1 iff W_diss = 0:
  η = ΔF/⟨W⟩ when ΔF > 0 (work must be done: e.g. cooling a loss E ≥ 0), η = ⟨W⟩/ΔF when ΔF < 0 (work can be
  extracted: e.g. cooling an Ising model, E < 0). η depends on the energy zero (E → E + c shifts W and ΔF by
  c·Δβ); W_diss and K·W_diss do not, so those are what the physics checks use.
* Thermodynamic length (Crooks 2007, with β as the control parameter the Fisher metric is Var_β(E)):
  L = ∫ √Var_β(E) |dβ|, divergence J = ∫ Var_β(E) |dβ|. With full equilibration between steps each step
  dissipates KL(p_k ‖ p_{k+1}) = ½ Δβ_k² Var_{β_k}(E) + O(Δβ³), so W_diss → ½ Σ_k (ΔL_k)². For the LINEAR
  schedule K·W_diss → ½ |β_K − β_0| J; for the GEODESIC schedule (equal steps ΔL_k = L/K, the minimiser of
  Σ ΔL_k² at fixed K: Cauchy–Schwarz) K·W_diss → L²/2, and L²/2 ≤ ½ |Δβ| J. When the kernel does not
  decorrelate E within one stage the dissipation exceeds these limits (lag): K·W_diss / (L²/2) − 1 measures it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np

from . import annealing
from .annealing import log_weights_estimate, min_reliable_ess
from .keys import as_key, fold
from .validate import check_beta, check_positive_int

__all__ = ["WorkResult", "ThermodynamicLength", "anneal_work", "work_statistics", "thermodynamic_length",
           "energy_variance_curve", "length_from_curve", "geodesic_schedule", "work_schedule"]

FROZEN_ACCEPTANCE = 0.01
_FINE = 64  # sub-intervals per grid interval when inverting the cumulative length


class WorkResult(NamedTuple):
    """Output of ``anneal_work`` / ``work_statistics``.

    Fields:
        work: float64 [chains] — W per chain (NaN: a chain with a non-finite work, excluded and counted).
        mean_work, mean_work_stderr: ⟨W⟩ ± sd/√n.
        delta_f, delta_f_stderr: Jarzynski ΔF = −log⟨e^{−W}⟩ ± delta-method stderr.
        dissipated_work, dissipated_work_stderr: ⟨W⟩ − ΔF ± stderr (joint delta method over chains).
        efficiency, efficiency_stderr: η (module doc; ≤ 1) ± stderr (delta method).
        work_variance: Var(W) (Var(W)/2 ≈ W_diss near equilibrium, for Gaussian work).
        ess: Kish ESS of e^{−W}; n_excluded: chains with non-finite W.
        schedule: float64 [K+1] from β_0 to β_K.
        reliable, reasons: False / why (low ESS of e^{−W}: Jarzynski biased; NaN chains; frozen kernel; ...).
        diagnostics: dict (kernel, acceptance per stage, mean energy per stage, equilibration R-hat, ...).
    """

    work: np.ndarray
    mean_work: float
    mean_work_stderr: float
    delta_f: float
    delta_f_stderr: float
    dissipated_work: float
    dissipated_work_stderr: float
    efficiency: float
    efficiency_stderr: float
    work_variance: float
    ess: float
    n_excluded: int
    schedule: np.ndarray
    reliable: bool
    reasons: tuple
    diagnostics: dict


class ThermodynamicLength(NamedTuple):
    """(L, stderr of L, J): L = ∫ √Var_β(E) |dβ|, J = ∫ Var_β(E) |dβ| (Crooks 2007)."""

    length: float
    stderr: float
    divergence: float


def work_statistics(work, schedule=None) -> WorkResult:
    """⟨W⟩, Jarzynski ΔF, W_diss and η with delta-method errors from per-chain works W [n] (no sampling)."""
    w_all = np.asarray(work, np.float64).ravel()
    ok = np.isfinite(w_all)
    w = w_all[ok]
    n = w.size
    nan = math.nan
    if n < 2:
        return WorkResult(w_all, nan, nan, nan, nan, nan, nan, nan, nan, nan, 0.0, int((~ok).sum()),
                          np.asarray(schedule if schedule is not None else [], np.float64), False,
                          ("fewer than 2 chains with a finite work",), {})
    mean_w = float(w.mean())
    se_w = float(w.std(ddof=1) / math.sqrt(n))
    value, _, ess, _ = log_weights_estimate(-w)
    df = -value
    x = np.exp(-(w - w.min()))  # e^{−W}, max-normalised
    m = x.mean()
    if_df = -(x - m) / m  # influence of each chain on ΔF = −log mean e^{−W}
    if_w = w - mean_w
    se_df = float(if_df.std(ddof=1) / math.sqrt(n))
    se_diss = float((if_w - if_df).std(ddof=1) / math.sqrt(n))
    if df >= 0:  # η = ΔF/⟨W⟩
        eta = df / mean_w if mean_w != 0 else nan
        if_eta = (if_df - eta * if_w) / mean_w if mean_w != 0 else np.full(n, nan)
    else:  # η = ⟨W⟩/ΔF
        eta = mean_w / df
        if_eta = (if_w - eta * if_df) / df
    se_eta = float(np.std(if_eta, ddof=1) / math.sqrt(n))
    reasons = []
    need = min_reliable_ess(n)
    if not ess >= need:
        reasons.append(f"ESS of exp(-W) is {ess:.1f} of {n} chains, below {need:.0f} = max(10, sqrt(2) n^(3/4)): "
                       "the Jarzynski estimate is dominated by a few chains and biased (dissipation too large; "
                       "use more steps K or more chains)")
    if (~ok).sum():
        reasons.append(f"{int((~ok).sum())} chains had a non-finite work (excluded)")
    return WorkResult(w_all, mean_w, se_w, float(df), se_df, float(mean_w - df), se_diss, float(eta), se_eta,
                      float(w.var(ddof=1)), float(ess), int((~ok).sum()),
                      np.asarray(schedule if schedule is not None else [], np.float64), not reasons,
                      tuple(reasons), {"min_reliable_ess": need, "n_chains": int(w_all.size)})


# --------------------------------------------------------------------------------------- thermodynamic length
def energy_variance_curve(model: Any, betas, *, key, n_chains: int = 64, n_steps: int = 2000,
                          kernel: str = "auto", **options) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(betas [T], Var_β(E) [T], its stderr [T]) from ``run_ensemble`` (``EnsembleResult.energy_variance``:
    pooled chains, jackknife stderr). ``options`` go to ``run_ensemble`` (n_warmup, kernel options, ...)."""
    from .ensemble import run_ensemble

    betas = np.asarray(betas, np.float64)
    order = np.argsort(betas)
    res = run_ensemble(model, betas[order], key=key, n_chains=n_chains, n_steps=n_steps, kernel=kernel, **options)
    v = res.energy_variance()
    var, se = np.empty_like(betas), np.empty_like(betas)
    var[order], se[order] = np.asarray(v.mean, np.float64), np.asarray(v.stderr, np.float64)
    return betas, var, se


def length_from_curve(betas, var, var_stderr=None) -> ThermodynamicLength:
    """L and J by the trapezoid rule on the grid (any order; |dβ|), with stderr of L from the independent
    per-point errors of Var (d√V = dV/(2√V)) plus, when the grid is uniform with an odd number of points, the
    Richardson quadrature error |T(h) − T(2h)|/3 added in quadrature."""
    b = np.asarray(betas, np.float64)
    order = np.argsort(b)
    b, v = b[order], np.clip(np.asarray(var, np.float64)[order], 0.0, None)
    if b.size < 2:
        raise ValueError(f"need at least 2 grid points, got {b.size}")
    s = np.sqrt(v)
    dw = np.zeros_like(b)  # trapezoid weights
    d = np.diff(b)
    dw[:-1] += d / 2
    dw[1:] += d / 2
    length, div = float(dw @ s), float(dw @ v)
    se2 = 0.0
    if var_stderr is not None:
        vs = np.asarray(var_stderr, np.float64)[order]
        with np.errstate(divide="ignore", invalid="ignore"):
            ds = np.where(s > 0, vs / (2 * s), np.sqrt(vs))  # at V = 0 the error of √V is ~√(error of V)
        se2 = float(np.sum((dw * ds) ** 2))
    if b.size >= 3 and b.size % 2 == 1 and np.allclose(d, d[0], rtol=1e-6):
        coarse = float(np.trapezoid(s[::2], b[::2]))
        se2 += ((length - coarse) / 3.0) ** 2
    return ThermodynamicLength(length, math.sqrt(se2), div)


def thermodynamic_length(model: Any, beta0: float, beta1: float, *, key, n_betas: int = 17, n_chains: int = 64,
                         n_steps: int = 2000, kernel: str = "auto", **options) -> ThermodynamicLength:
    """Thermodynamic length L = ∫ √Var_β(E) |dβ| between β_0 and β_1 from the equilibrium runner (Crooks 2007).

    Args:
        model: a thermodl model. beta0, beta1: the end points (either order). key: jax key or int seed.
        n_betas: uniform grid points including both ends (odd: a quadrature error estimate is included).
        n_chains, n_steps, kernel, **options: passed to ``run_ensemble``.

    Returns:
        ``ThermodynamicLength(length, stderr, divergence)`` (J = ∫ Var E |dβ|).
    """
    b0, b1 = check_beta(beta0, "beta0"), check_beta(beta1, "beta1")
    n_betas = check_positive_int(n_betas, "n_betas")
    if n_betas < 2:
        raise ValueError(f"n_betas must be at least 2, got {n_betas}")
    grid, var, se = energy_variance_curve(model, np.linspace(min(b0, b1), max(b0, b1), n_betas), key=key,
                                          n_chains=n_chains, n_steps=n_steps, kernel=kernel, **options)
    return length_from_curve(grid, var, se)


def geodesic_schedule(betas, var, beta0: float, beta1: float, n_steps: int) -> np.ndarray:
    """The K-step schedule from β_0 to β_1 at constant speed in L (equal ΔL_k), from a curve Var_β(E) on
    ``betas`` (√Var interpolated linearly between grid points). Returns float64 [K+1] (β_0 first)."""
    b = np.asarray(betas, np.float64)
    order = np.argsort(b)
    b, s = b[order], np.sqrt(np.clip(np.asarray(var, np.float64)[order], 0.0, None))
    lo, hi = min(beta0, beta1), max(beta0, beta1)
    if b[0] > lo + 1e-12 or b[-1] < hi - 1e-12:
        raise ValueError(f"the variance curve must cover [{lo}, {hi}], it covers [{b[0]}, {b[-1]}]")
    fine = np.linspace(lo, hi, _FINE * max(b.size, 2) + 1)
    sf = np.maximum(np.interp(fine, b, s), 1e-12 * max(s.max(), 1e-300))  # a zero-variance stretch still moves
    cum = np.concatenate([[0.0], np.cumsum(np.diff(fine) * 0.5 * (sf[1:] + sf[:-1]))])
    target = np.linspace(0.0, cum[-1], n_steps + 1)
    sched = np.interp(target, cum, fine)
    sched[0], sched[-1] = lo, hi
    return sched if beta1 >= beta0 else sched[::-1].copy()


def work_schedule(schedule, beta0: float, beta1: float, n_steps: int | None) -> np.ndarray:
    """A linear schedule (``"linear"``) or a validated explicit array [K+1], strictly monotone, β_0 → β_1."""
    if isinstance(schedule, str):
        if schedule != "linear":
            raise ValueError(f"schedule must be 'linear', 'geodesic' or an array, got {schedule!r}")
        return np.linspace(beta0, beta1, check_positive_int(n_steps, "n_steps") + 1)
    s = np.asarray(schedule, np.float64).ravel()
    if s.size < 2 or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("schedule must hold at least 2 finite β ≥ 0")
    d = np.diff(s)
    if not (np.all(d > 0) or np.all(d < 0)):
        raise ValueError("schedule must be strictly monotone")
    if not (math.isclose(s[0], beta0, abs_tol=1e-12) and math.isclose(s[-1], beta1, abs_tol=1e-12)):
        raise ValueError(f"schedule must run from beta0={beta0} to beta1={beta1}, got {s[0]} .. {s[-1]}")
    return s


# ------------------------------------------------------------------------------------------------ annealing
def anneal_work(model: Any, beta0: float, beta1: float, *, key, n_steps: int = 64, n_chains: int = 1024,
                schedule="linear", kernel: str = "auto", n_sweeps: int = 1, step_size=None,
                n_equilibrate: int = 1000, variance_curve=None, n_pilot_betas: int = 17,
                n_pilot_steps: int = 1000, **options) -> WorkResult:
    """Anneal ``n_chains`` chains from equilibrium at β_0 to β_1 in K = ``n_steps`` steps; their work and ΔF.

    Args:
        model: a thermodl model (one, not a stack).
        beta0, beta1: start and end inverse temperatures (β_1 > β_0 cooling, β_1 < β_0 heating).
        key: jax key or int seed (start draws: fold(key, 0); pilot: fold(key, 1); annealing: fold(key, 2)).
        n_steps: K. n_chains: independent chains (one annealing lane of n_chains particles, no resampling).
        schedule: ``"linear"``, ``"geodesic"`` (equal steps in L from a pilot Var_β(E) curve: ``variance_curve``
            = (betas, var) if given, else ``energy_variance_curve`` on ``n_pilot_betas`` points with
            ``n_pilot_steps`` steps) or an explicit monotone array [K+1] from β_0 to β_1.
        kernel: any ``engine.kernel_binding`` kernel; n_sweeps: its steps per stage; step_size: fixed step size(s)
            (default: adapted from the population, ``engine.annealing``).
        n_equilibrate: when β_0 > 0, the start draws are the final states of ``run_ensemble`` at β_0 (n_chains
            independent chains, ``n_equilibrate`` warmup + ``n_equilibrate`` steps; their R-hat of E is in the
            diagnostics and flagged above 1.05). At β_0 = 0 the start draws are exact (``sample_reference``).
        **options: kernel options.

    Returns:
        ``WorkResult`` (see ``work_statistics``); diagnostics add ``kernel``, ``acceptance`` [K], ``mean_energy``
        [K+1] (chain mean E at each stage), ``late_acceptance``, ``equilibration_rhat`` (β_0 > 0).
    """
    b0, b1 = check_beta(beta0, "beta0"), check_beta(beta1, "beta1")
    if b0 == b1:
        raise ValueError("beta0 and beta1 must differ")
    n_chains = check_positive_int(n_chains, "n_chains")
    n_sweeps = check_positive_int(n_sweeps, "n_sweeps")
    key = as_key(key)
    if isinstance(schedule, str) and schedule == "geodesic":
        if variance_curve is None:
            lo, hi = min(b0, b1), max(b0, b1)
            variance_curve = energy_variance_curve(model, np.linspace(lo, hi, n_pilot_betas), key=fold(key, 1),
                                                   n_chains=64, n_steps=n_pilot_steps, kernel=kernel, **options)[:2]
        sched = geodesic_schedule(variance_curve[0], variance_curve[1], b0, b1, check_positive_int(n_steps,
                                                                                                   "n_steps"))
    else:
        sched = work_schedule(schedule, b0, b1, n_steps)
    diagnostics: dict = {}
    start = None
    if b0 > 0:
        from .ensemble import run_ensemble

        eq = run_ensemble(model, [b0], key=fold(key, 0), n_chains=n_chains, n_steps=n_equilibrate,
                          n_warmup=n_equilibrate, kernel=kernel, **options)
        start = np.asarray(eq.final_state.position)[0]
        diagnostics["equilibration_rhat"] = float(np.asarray(eq.rhat("energy"))[0])
    spec, params = annealing.prepare(model, key=fold(key, 2), beta=max(b0, b1), kernel=kernel,
                                     n_particles=max(n_chains, 2), n_sweeps=n_sweeps, schedule=sched,
                                     resample=False, step_size=step_size, options=options,
                                     initial_position=None if start is None else _pad(start, max(n_chains, 2)))
    raw = annealing.anneal(model, params, spec, n_runs=1)
    work = -np.asarray(raw.log_weights[0], np.float64)[:n_chains]
    out = work_statistics(work, sched)
    acc = np.asarray(raw.acceptance[0], np.float64)
    k = acc.size
    late = float(np.nanmean(acc[k - max(1, k // 4):])) if np.any(np.isfinite(acc)) else math.nan
    reasons = list(out.reasons)
    if late < FROZEN_ACCEPTANCE:
        reasons.append(f"frozen transitions: acceptance {late:.2g} over the last quarter of the stages")
    if diagnostics.get("equilibration_rhat", 1.0) > 1.05:
        reasons.append(f"start draws at beta0={b0:g} not equilibrated: R-hat(E) = "
                       f"{diagnostics['equilibration_rhat']:.3f} > 1.05 (raise n_equilibrate)")
    diagnostics.update(out.diagnostics, kernel=spec.kernel, n_sweeps=n_sweeps, acceptance=acc,
                       mean_energy=np.asarray(raw.mean_energy[0], np.float64), late_acceptance=late,
                       n_divergent=int(np.sum(raw.n_divergent)))
    if reasons:
        warnings.warn(f"anneal_work {b0:g} -> {b1:g}: not reliable: " + "; ".join(reasons), RuntimeWarning,
                      stacklevel=2)
    return out._replace(reliable=not reasons, reasons=tuple(reasons), diagnostics=diagnostics)


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    return x if x.shape[0] >= n else np.concatenate([x, x[-1:].repeat(n - x.shape[0], axis=0)])
