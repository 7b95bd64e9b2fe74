"""The honesty contract's shared rules: when is an equilibrium estimate (TI, PT, thermodynamics) reliable?

Every estimator returns ``reliable`` and ``reasons`` (``LogZEstimate``; per-β variables of ``thermodynamics``). The
rules below are the ONE place for the thresholds shared by ``engine.ti``, ``engine.tempering`` and
``engine.thermo``; ``engine.ais`` / ``engine.smc`` keep their own weight-based rules and use ``warn_unreliable``.
Contract: on models with an exact value, an estimate with |z| > 4 must never be reported as reliable
(tests/engine/test_reliability.py checks it on seeds × models × β including glassy and frozen cases).

Thresholds and why:

* ``RHAT_MAX = 1.1`` — split R-hat of E over independent chains (``diagnostics.split_rhat_from_moments``). The
  classic Gelman–Rubin bound (BDA3 §11.4). Above it the between-chain spread of ⟨E⟩ exceeds what the within-chain
  fluctuations allow by ≥ 21 % in variance: the chains sit in different states, ⟨E⟩ is not an equilibrium mean and
  the chain-to-chain error bar does not cover the bias (measured: TI on a perceptron near capacity with R-hat
  1.2–∞ at z = −7 … −34). An infinite R-hat (chains constant but different) is the same failure, maximally.
* ``FROZEN_ACCEPTANCE = 0.01`` — mean kernel acceptance below 1 %: fewer than one accepted move per 100 sweeps per
  site (the same bound as AIS/SMC). A frozen chain keeps whatever energy it reached in warmup; if all chains froze
  in different states R-hat sees it, but if they froze alike R-hat is ≈ 1 (or undefined: no variance) and only
  the acceptance shows it. A frozen β point is harmless only when every chain sits at the same energy with no
  fluctuation at all (a ground state reached by all chains: U = E_min, Var E = 0); ``frozen_points`` encodes that.
* ``MIN_CHAINS = 4`` — finite independent chains per β (or PT systems). With fewer, the chain-to-chain standard
  error has < 3 degrees of freedom: its own relative error is > 40 % and Student-t tails make |z| > 4 common.
* ``MIN_ROUND_TRIPS = 20`` per PT system in production. The cold slots decorrelate only through replicas that
  come down from the hot end, roughly once per round trip, so a system's estimate rests on about as many
  independent cold-slot visits as it has round trips. The bridge error bar is the spread over systems; it is
  honest only if each system's estimate is near-normal, i.e. averages ≳ 20 independent visits (a basin of weight
  p is then missed by a system with probability (1−p)^20: < 12 % for p ≥ 0.1). Measured: 4–10 trips per system
  gave z = −3.4 … −10.8 on a binary perceptron at β = 20; ≥ 20 (the default budget on easy models gives 40–60)
  gave |z| < 3. A system with no round trip at all is never mixed across the ladder and is flagged on its own.
* ``MIN_SWAP_RATE = 0.05`` — a neighbouring pair accepting < 5 % of swaps is a bottleneck: a replica needs
  > 20 attempts to cross it, and the ladder is then too sparse there (named in the reasons, since the round-trip
  rule alone does not say where the ladder breaks).
* ``MAX_QUADRATURE_FRACTION = 0.5`` — TI's quadrature-error estimate is a bound from rule differences, not a
  standard error; when it is more than half of the reported error bar (in quadrature: quad > mc / √3), z is no
  longer N(0, 1)-distributed and the grid, not the sampling, decides the answer.
"""

from __future__ import annotations

import math
import warnings
from typing import Iterable

import numpy as np

__all__ = [
    "RHAT_MAX",
    "FROZEN_ACCEPTANCE",
    "MIN_CHAINS",
    "MIN_ROUND_TRIPS",
    "MIN_SWAP_RATE",
    "MAX_QUADRATURE_FRACTION",
    "warn_unreliable",
    "rhat_points",
    "frozen_points",
    "equilibrium_reasons",
    "round_trip_reasons",
    "quadrature_reason",
    "fmt_betas",
]

RHAT_MAX = 1.1
FROZEN_ACCEPTANCE = 0.01
MIN_CHAINS = 4
MIN_ROUND_TRIPS = 20
MIN_SWAP_RATE = 0.05
MAX_QUADRATURE_FRACTION = 0.5


def warn_unreliable(what: str, reasons: Iterable[str], stacklevel: int = 3) -> None:
    """One ``RuntimeWarning`` "<what>: not reliable: reason; reason" (nothing when ``reasons`` is empty)."""
    reasons = list(reasons)
    if reasons:
        warnings.warn(f"{what}: not reliable: " + "; ".join(reasons), RuntimeWarning, stacklevel=stacklevel)


def fmt_betas(betas: np.ndarray, mask: np.ndarray, limit: int = 4) -> str:
    """"β = 0.5, 0.7, … (k of K)" for the points where ``mask`` holds."""
    b = np.asarray(betas, np.float64)[np.asarray(mask, bool)]
    shown = ", ".join(f"{x:.4g}" for x in b[:limit]) + (", …" if b.size > limit else "")
    return f"β = {shown} ({b.size} of {np.size(mask)})"


def _constant_everywhere(energy_mean: np.ndarray, energy_var: np.ndarray) -> np.ndarray:
    """[T]: every finite chain at this β sits at one energy with no fluctuation (e.g. all at a ground state)."""
    mu = np.asarray(energy_mean, np.float64)
    var = np.asarray(energy_var, np.float64)
    scale = np.maximum(1.0, np.nanmax(np.abs(mu), axis=-1, initial=0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanmax(mu, axis=-1) - np.nanmin(mu, axis=-1)
        wvar = np.nanmax(var, axis=-1)
    return (spread <= 1e-6 * scale) & (wvar <= 1e-9 * scale**2)


def rhat_points(rhat: np.ndarray, energy_mean: np.ndarray, energy_var: np.ndarray) -> np.ndarray:
    """[T] bool: R-hat of E above ``RHAT_MAX`` (or infinite, or NaN while the chains are not all constant alike).

    Args:
        rhat: [T] split R-hat of E. energy_mean, energy_var: [T, C] per-chain mean and variance of E (non-finite
            chains NaN).
    """
    r = np.asarray(rhat, np.float64)
    same = _constant_everywhere(energy_mean, energy_var)
    return np.where(np.isnan(r), ~same, r > RHAT_MAX)


def frozen_points(acceptance: np.ndarray, energy_mean: np.ndarray, energy_var: np.ndarray) -> np.ndarray:
    """[T] bool: kernel acceptance below ``FROZEN_ACCEPTANCE`` where the chains are not all at one constant energy."""
    acc = np.asarray(acceptance, np.float64)
    return (acc < FROZEN_ACCEPTANCE) & ~_constant_everywhere(energy_mean, energy_var)


def equilibrium_reasons(betas, rhat, acceptance, energy_mean, energy_var, n_used, *, what: str = "chains",
                        check_frozen: bool = True) -> tuple[list[str], np.ndarray]:
    """The per-β equilibrium rules (R-hat, frozen kernels, too few finite chains).

    Args:
        betas: [T]. rhat: [T] split R-hat of E. acceptance: [T] mean kernel acceptance. energy_mean, energy_var:
            [T, C] per-chain mean / variance of E (NaN for excluded chains). n_used: [T] finite chains per β.
        what: "chains" or "PT systems" (wording). check_frozen: False for PT, whose cold slots are fed by swaps.
    Returns:
        (reasons, bad [T] bool: the β points that fail a rule).
    """
    b = np.asarray(betas, np.float64)
    hi = rhat_points(rhat, energy_mean, energy_var)
    few = np.asarray(n_used) < MIN_CHAINS
    bad = hi | few
    reasons = []
    if hi.any():
        worst = np.nanmax(np.where(np.isnan(rhat), np.inf, rhat)[hi])
        reasons.append(f"{what} disagree (R-hat of E {worst:.3g} > {RHAT_MAX}) at {fmt_betas(b, hi)}: not in "
                       "equilibrium")
    if check_frozen:
        fr = frozen_points(acceptance, energy_mean, energy_var)
        bad |= fr
        if fr.any():
            reasons.append(f"frozen chains (acceptance {np.nanmin(np.asarray(acceptance)[fr]):.2g} < "
                           f"{FROZEN_ACCEPTANCE}) at {fmt_betas(b, fr)}: the energies are where warmup left them")
    if few.any():
        reasons.append(f"fewer than {MIN_CHAINS} finite {what} at {fmt_betas(b, few)}")
    return reasons, bad


def round_trip_reasons(round_trips, swap_rate, betas, n_steps: int) -> list[str]:
    """The PT mixing rules: mean round trips per system ≥ ``MIN_ROUND_TRIPS``, no system without one, and the
    neighbouring pairs with swap acceptance < ``MIN_SWAP_RATE`` named.

    Args:
        round_trips: [systems] completed production round trips. swap_rate: [R−1]. betas: [R]. n_steps: production
            PT steps.
    """
    trips = np.asarray(round_trips, np.float64).reshape(-1)
    reasons = []
    mean = float(trips.mean()) if trips.size else 0.0
    if mean < MIN_ROUND_TRIPS:
        reasons.append(f"too few round trips across the ladder: {mean:.3g} per system in {n_steps} steps (need ≥ "
                       f"{MIN_ROUND_TRIPS}; more steps or replicas)")
    elif np.any(trips == 0):
        reasons.append(f"{int(np.sum(trips == 0))} of {trips.size} systems made no round trip")
    rate = np.asarray(swap_rate, np.float64)
    low = ~(rate >= MIN_SWAP_RATE)
    if low.any():
        b = np.asarray(betas, np.float64)
        pairs = ", ".join(f"{b[i]:.3g}↔{b[i + 1]:.3g} ({rate[i]:.2g})" for i in np.flatnonzero(low)[:4])
        reasons.append(f"swap rate below {MIN_SWAP_RATE} between β {pairs}")
    return reasons


def quadrature_reason(quadrature_error: float, mc_stderr: float) -> list[str]:
    """TI: the quadrature bound is more than ``MAX_QUADRATURE_FRACTION`` of the error bar."""
    total = math.hypot(quadrature_error, mc_stderr)
    if total > 0 and quadrature_error > MAX_QUADRATURE_FRACTION * total:
        return [f"quadrature error dominates ({quadrature_error:.2g} of ±{total:.2g}; Monte Carlo {mc_stderr:.2g}): "
                "refine the β grid (more n_betas)"]
    return []
