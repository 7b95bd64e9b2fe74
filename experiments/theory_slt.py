"""Exact learning coefficients (real log canonical thresholds) of linear models, for checking ``engine.llc``.

* Regular model with d parameters: λ = d/2, multiplicity m = 1 (Watanabe 2009, §1.4 / Schwarz's BIC).
* Reduced-rank regression y = B A x, A: H×M, B: N×H, true matrix of rank r ≤ H: M. Aoyagi & S. Watanabe,
  "Stochastic complexities of reduced rank regression in Bayesian estimation", Neural Networks 18, 924 (2005),
  Main Theorem (four cases in M, N, H, r; m = 2 only in case 1 with M + H + N + r odd).
* Deep linear networks x ↦ W_L ⋯ W_1 x with widths H_1 (input), H_2, …, H_{L+1} (output) and a true product of
  rank r: M. Aoyagi, "Consideration on the learning efficiency of multiple-layered neural networks with linear
  units", Neural Networks 172, 106132 (2024), Theorem 1. With M_i = H_i − r, there is a unique subset Σ of
  ℓ + 1 ≥ 2 indices with max_Σ M < min_{Σᶜ} M, Σ_Σ M ≥ ℓ·max_Σ M and Σ_Σ M < ℓ·min_{Σᶜ} M; with
  s = Σ_Σ M, M̄ = ⌈s/ℓ⌉ and a = s − (M̄ − 1)ℓ,
      λ = [r(H_1 + H_{L+1}) − r²]/2 + a(ℓ − a)/(4ℓ) − ℓ(ℓ − 1)(s/ℓ)²/4 + ½ Σ_{i<j∈Σ} M_i M_j,
  and m = 1 if a = ℓ, else 2. For L = 2 it reduces to Aoyagi & Watanabe 2005 (checked in the tests).

These are *global* coefficients: the local coefficient at w* equals them when w* is a most singular true
parameter — every layer of rank r, e.g. W_i = P_i Q_i with P_i, Q_i of inner size r. At a less singular true
point (say a full-rank layer) the local coefficient is larger. m > 1 makes finite-nβ estimates converge slowly,
λ̂ ≈ λ − (m − 1)/log(nβ), so checks use m = 1 settings.

The same formulas are implemented in devinterp's test suite (timaeus-research/devinterp); this module follows the
papers' statements.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple, Sequence

__all__ = ["LearningCoefficient", "regular", "reduced_rank_regression", "deep_linear"]


class LearningCoefficient(NamedTuple):
    """λ (the RLCT) and its multiplicity m (Z_n ≍ n^{−λ} (log n)^{m−1})."""

    value: float
    multiplicity: int


def _nonneg_int(v, name: str, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, (int,)) or v < minimum:
        raise ValueError(f"{name} must be an int ≥ {minimum}, got {v!r}")
    return int(v)


def regular(d: int) -> LearningCoefficient:
    """λ = d/2 for a regular (identifiable, positive-definite Fisher information) model with d parameters."""
    return LearningCoefficient(_nonneg_int(d, "d", 1) / 2, 1)


def reduced_rank_regression(M: int, N: int, H: int, r: int) -> LearningCoefficient:
    """Aoyagi & Watanabe (2005), Main Theorem: input dimension M, output N, inner rank H, true rank r ≤ H."""
    M, N, H = (_nonneg_int(v, k, 1) for v, k in ((M, "M"), (N, "N"), (H, "H")))
    r = _nonneg_int(r, "r")
    if r > min(M, N, H):
        raise ValueError(f"true rank r = {r} exceeds min(M, N, H) = {min(M, N, H)}")
    if M + H < N + r:
        return LearningCoefficient((H * M - H * r + N * r) / 2, 1)
    if N + H < M + r:
        return LearningCoefficient((H * N - H * r + M * r) / 2, 1)
    if M + N < H + r:
        return LearningCoefficient(M * N / 2, 1)
    base = 2 * (H + r) * (M + N) - (M - N) ** 2 - (H + r) ** 2
    if (M + H + N + r) % 2 == 0:
        return LearningCoefficient(base / 8, 1)
    return LearningCoefficient((base + 1) / 8, 2)


def _aoyagi_subset(m: Sequence[int]) -> tuple[int, ...]:
    """The index set Σ of Aoyagi (2024) Theorem 1 (brute force: fine for the few layers used here)."""
    idx = range(len(m))
    for size in range(2, len(m) + 1):
        for sub in itertools.combinations(idx, size):
            ell = size - 1
            inside = [m[i] for i in sub]
            outside = [m[i] for i in idx if i not in sub]
            s = sum(inside)
            lo = min(outside) if outside else math.inf
            if max(inside) < lo and s >= ell * max(inside) and s < ell * lo:
                return sub
    raise ValueError(f"no Aoyagi subset for M_i = {list(m)}")  # cannot happen for M_i ≥ 0


def deep_linear(widths: Sequence[int], r: int) -> LearningCoefficient:
    """Aoyagi (2024), Theorem 1: widths (H_1 = input, …, H_{L+1} = output), L ≥ 2 weight matrices, true rank r.

    L = 1 (a single matrix) is the regular model, λ = H_1·H_2/2.
    """
    widths = [_nonneg_int(h, "width", 1) for h in widths]
    if len(widths) < 2:
        raise ValueError(f"widths needs input and output sizes, got {widths}")
    r = _nonneg_int(r, "r")
    if r > min(widths):
        raise ValueError(f"true rank r = {r} exceeds the smallest width {min(widths)}")
    if len(widths) == 2:
        return regular(widths[0] * widths[1])
    m = [h - r for h in widths]
    sub = _aoyagi_subset(m)
    ell = len(sub) - 1
    ms = [m[i] for i in sub]
    s = sum(ms)
    m_bar = -(-s // ell)
    a = s - (m_bar - 1) * ell
    pairs = sum(ms[i] * ms[j] for i in range(len(ms)) for j in range(i + 1, len(ms)))
    lam = (r * (widths[0] + widths[-1]) - r * r) / 2 + a * (ell - a) / (4 * ell) \
        - ell * (ell - 1) * (s / ell) ** 2 / 4 + pairs / 2
    return LearningCoefficient(lam, 1 if a == ell else 2)
