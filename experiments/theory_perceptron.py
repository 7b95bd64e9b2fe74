"""Exact and replica-symmetric (RS) theory of the perceptron: capacity, version-space volume, Gibbs learning.

Every function here is a small, self-contained solver of one published formula (float64, SciPy quadrature);
the figure modules ``experiments.gardner`` and ``experiments.gibbs_learning`` draw them over the measurements.
Notation: Dt = e^{−t²/2} dt/√(2π) the Gaussian measure, H(x) = ∫_x^∞ Dt, G(x) = e^{−x²/2}/√(2π); all logs natural.

* ``cover_separable_probability`` — T. M. Cover, IEEE Trans. Electron. Comput. EC-14, 326 (1965), Thm 1:
  P_sep(P, N) = 2^{1−P} Σ_{k=0}^{N−1} C(P−1, k) (exact for points in general position).
* ``gardner_log_volume`` — E. Gardner, J. Phys. A 21, 257 (1988), the RS fractional volume (exact for the
  spherical perceptron): (1/N) ln V = min_q [½ ln(1−q) + q/(2(1−q)) + α ∫Dt ln H((κ − √q t)/√(1−q))].
* ``binary_entropy_rs`` / ``binary_zero_entropy_alpha`` — E. Gardner & B. Derrida, J. Phys. A 21, 271 (1988)
  §4; W. Krauth & M. Mézard, J. Phys. France 50, 3057 (1989): the RS entropy of ±1 weights
  s = ext_{q,q̂} [−q̂(1−q)/2 + ∫Dz ln 2cosh(√q̂ z) + α ∫Dt ln H((κ − √q t)/√(1−q))], which vanishes at
  α ≈ 0.833 (the capacity of the binary perceptron).
* ``gibbs_overlap_spherical`` / ``gibbs_error_spherical`` — G. Györgyi & N. Tishby (1990); A. Engel &
  C. Van den Broeck, *Statistical Mechanics of Learning* (CUP 2001), ch. 2 (Gibbs learning):
  R/√(1−R) = (α/π) ∫Dt e^{−R t²/2}/H(−√R t), ε = arccos(R)/π, ε ≈ 0.625/α at large α.
* ``gibbs_binary_branch`` / ``binary_gibbs_transition`` — G. Györgyi, Phys. Rev. A 41, 7097 (1990);
  H. Sompolinsky, N. Tishby & H. S. Seung, PRL 65, 1683 (1990); Engel & Van den Broeck ch. 7: Ising student and
  teacher, RS on the Nishimori line q = R:
  s(R) = ext_R̂ [−R̂(1+R)/2 + ∫Dz ln 2cosh(√R̂ z + R̂) + 2α ∫Dt H(−u t) ln H(−u t)], u = √(R/(1−R)).
  The poor-generalisation branch (R < 1) has s = 0 at α_c ≈ 1.245 (first-order transition to R = 1, ε = 0) and
  disappears at the spinodal α_sp ≈ 1.49 (the algorithmic threshold of L. Zdeborová & F. Krzakala,
  Adv. Phys. 65, 453 (2016), §V).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import integrate, optimize, special

__all__ = [
    "cover_separable_probability",
    "gardner_log_volume",
    "GardnerVolume",
    "binary_entropy_rs",
    "BinaryEntropy",
    "binary_zero_entropy_alpha",
    "gibbs_overlap_spherical",
    "gibbs_error_spherical",
    "gibbs_binary_branch",
    "BinaryGibbsBranch",
    "binary_gibbs_transition",
    "binary_spinodal",
]

_SQRT2PI = math.sqrt(2.0 * math.pi)


def _check_alpha(alpha, name: str = "alpha") -> float:
    a = float(alpha)
    if not (math.isfinite(a) and a >= 0.0):
        raise ValueError(f"{name} must be finite and >= 0, got {alpha!r}")
    return a


def _gauss(f, breaks=(0.0,)) -> float:
    """∫Dt f(t) by adaptive quadrature, split at ``breaks`` (kinks / steep fronts of the integrand)."""
    pts = sorted({float(b) for b in breaks if math.isfinite(b)})
    edges = [-np.inf] + pts + [np.inf]
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        val, _ = integrate.quad(lambda t: f(t) * math.exp(-0.5 * t * t) / _SQRT2PI, a, b, limit=200,
                                epsabs=1e-13, epsrel=1e-11)
        total += val
    return total


def _log_h(x):
    """ln H(x) = ln Φ(−x), stable for large |x|."""
    return special.log_ndtr(-x)


def _log_2cosh(x):
    x = abs(x)
    return x + math.log1p(math.exp(-2.0 * x))


# --------------------------------------------------------------------------------------------------- Cover
def cover_separable_probability(P: int, N: int) -> float:
    """Probability that P random dichotomies of P points in general position in R^N are linearly separable
    by a hyperplane through the origin: 2^{1−P} Σ_{k=0}^{N−1} C(P−1, k) (Cover 1965). Equals 1 for P ≤ N and 1/2
    at P = 2N.

    Args:
        P: number of points (≥ 1). N: dimension (≥ 1).
    Returns:
        float in (0, 1].
    """
    for name, v in (("P", P), ("N", N)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    P, N = int(P), int(N)
    # Binomial CDF of Bin(P−1, 1/2) at N−1, in exact integer arithmetic (no cancellation for large P).
    return math.fsum(math.comb(P - 1, k) for k in range(min(N, P))) / 2.0 ** (P - 1)


# -------------------------------------------------------------------------------------- Gardner (spherical)
def _energetic(q: float, alpha: float, kappa: float) -> float:
    """α ∫Dt ln H((κ − √q t)/√(1−q))."""
    sq, s1 = math.sqrt(q), math.sqrt(1.0 - q)
    return alpha * _gauss(lambda t: _log_h((kappa - sq * t) / s1), breaks=(kappa / sq if sq > 0 else 0.0,))


class GardnerVolume(NamedTuple):
    """``log_volume``: (1/N) ln V (RS); ``q``: the typical overlap of two solutions."""

    log_volume: float
    q: float


def gardner_log_volume(alpha: float, kappa: float = 0.0) -> GardnerVolume:
    """RS log-volume per weight of the spherical perceptron's version space (Gardner 1988):
    (1/N) ln V = min_q [½ ln(1−q) + q/(2(1−q)) + α ∫Dt ln H((κ − √q t)/√(1−q))], for α below the capacity
    α_c(κ) (α_c(0) = 2), where V is the fraction of the sphere |w|² = N with all stabilities > κ.

    Limits: α → 0 gives 0 (normalised measure); at q = 0 the bracket is the annealed value α ln H(κ) (= −α ln 2
    at κ = 0), an upper bound; the volume → −∞ as α → α_c (q → 1).

    Args:
        alpha: P/N, 0 ≤ α < α_c(κ). kappa: margin κ.
    Returns:
        ``GardnerVolume(log_volume, q)``.
    """
    alpha, kappa = _check_alpha(alpha), float(kappa)
    if not math.isfinite(kappa):
        raise ValueError(f"kappa must be finite, got {kappa!r}")
    if alpha == 0.0:
        return GardnerVolume(0.0, 0.0)

    def f(y):  # q = 1 − e^{−y} resolves q → 1
        q = -math.expm1(-y)
        return 0.5 * math.log1p(-q) + q / (2.0 * (1.0 - q)) + _energetic(q, alpha, kappa)

    res = optimize.minimize_scalar(f, bounds=(1e-9, 30.0), method="bounded", options={"xatol": 1e-10})
    if res.x > 29.0:
        raise ValueError(f"alpha={alpha!r} is at or above the capacity for kappa={kappa!r}: no finite volume")
    q = -math.expm1(-res.x)
    return GardnerVolume(float(min(res.fun, alpha * float(_log_h(kappa)))), q)


# ------------------------------------------------------------------------------------------ binary (Ising)
class BinaryEntropy(NamedTuple):
    """``entropy``: (1/N) ln #solutions (RS); ``q``, ``q_hat``: the RS order parameter and its conjugate."""

    entropy: float
    q: float
    q_hat: float


def _ratio_sq(q: float, kappa: float) -> float:
    """∫Dt [G(u)/H(u)]², u = (κ − √q t)/√(1−q) (so that d/dq ∫Dt ln H(u) = −(1/(2(1−q))) × this)."""
    sq, s1 = math.sqrt(q), math.sqrt(1.0 - q)

    def g(t):
        u = (kappa - sq * t) / s1
        return math.exp(2.0 * (-0.5 * u * u - math.log(_SQRT2PI) - _log_h(u)))

    return _gauss(g, breaks=(kappa / sq if sq > 0 else 0.0,))


def binary_entropy_rs(alpha: float, kappa: float = 0.0, *, tol: float = 1e-11) -> BinaryEntropy:
    """RS entropy per weight of the ±1 perceptron's solutions (Gardner & Derrida 1988, §4):
    s = ext_{q,q̂} [−q̂(1−q)/2 + ∫Dz ln 2cosh(√q̂ z) + α ∫Dt ln H((κ − √q t)/√(1−q))], solved by damped iteration of
    q = ∫Dz tanh²(√q̂ z), q̂ = α/(1−q) ∫Dt [G(u)/H(u)]². s(0) = ln 2; s < annealed (1 − α) ln 2 (κ = 0); s = 0
    at α ≈ 0.833 (Krauth & Mézard 1989). Valid (as an RS solution) up to α = 4/π (κ = 0), where q → 1.

    Returns:
        ``BinaryEntropy(entropy, q, q_hat)``.
    """
    alpha, kappa = _check_alpha(alpha), float(kappa)
    if alpha == 0.0:
        return BinaryEntropy(math.log(2.0), 0.0, 0.0)
    q = min(0.5, alpha / 2.0)
    for _ in range(5000):
        q_hat = alpha / (1.0 - q) * _ratio_sq(q, kappa)
        a = math.sqrt(q_hat)
        q_new = _gauss(lambda z: math.tanh(a * z) ** 2)
        if abs(q_new - q) < tol:
            q = q_new
            break
        q = 0.5 * q + 0.5 * q_new
        if q > 1.0 - 1e-12:
            raise ValueError(f"alpha={alpha!r}: the RS solution of the binary perceptron does not exist (q -> 1)")
    else:
        raise ValueError(f"alpha={alpha!r}: the binary RS saddle point did not converge")
    q_hat = alpha / (1.0 - q) * _ratio_sq(q, kappa)
    a = math.sqrt(q_hat)
    s = -0.5 * q_hat * (1.0 - q) + _gauss(lambda z: _log_2cosh(a * z)) + _energetic(q, alpha, kappa)
    return BinaryEntropy(float(s), float(q), float(q_hat))


def binary_zero_entropy_alpha(kappa: float = 0.0) -> float:
    """α where the RS entropy of the ±1 perceptron vanishes: its capacity, ≈ 0.833 at κ = 0 (Krauth & Mézard)."""
    kappa = float(kappa)
    lo, hi = 0.05, 1.1
    if binary_entropy_rs(hi, kappa).entropy > 0.0:
        raise ValueError(f"no zero of the RS binary entropy below alpha = 1.1 for kappa={kappa!r}")
    return float(optimize.brentq(lambda a: binary_entropy_rs(a, kappa).entropy, lo, hi, xtol=1e-9))


# ---------------------------------------------------------------------------------------- Gibbs learning
def _teacher_integral(R: float) -> float:
    """∫Dt e^{−R t²/2} / H(−√R t)."""
    sr = math.sqrt(R)
    return _gauss(lambda t: math.exp(-0.5 * R * t * t - _log_h(-sr * t)))


def _teacher_energetic(R: float) -> float:
    """2 ∫Dt H(−u t) ln H(−u t), u = √(R/(1−R)): the energetic term of Gibbs learning per unit α."""
    u = math.sqrt(R / (1.0 - R))
    return 2.0 * _gauss(lambda t: math.exp(_log_h(-u * t)) * _log_h(-u * t))


def gibbs_overlap_spherical(alpha: float) -> float:
    """Teacher–student overlap R of zero-temperature Gibbs learning, spherical student and teacher, Gaussian
    inputs: the root of R/√(1−R) = (α/π) ∫Dt e^{−R t²/2}/H(−√R t) (Györgyi & Tishby 1990; Engel & Van den Broeck
    ch. 2). R ≈ 2α/π at small α, R → 1 as α → ∞.

    Returns:
        R in [0, 1).
    """
    alpha = _check_alpha(alpha)
    if alpha == 0.0:
        return 0.0

    def f(y):  # R = 1 − e^{−y}
        R = -math.expm1(-y)
        return R * math.exp(0.5 * y) - alpha / math.pi * _teacher_integral(R)

    return float(-math.expm1(-optimize.brentq(f, 1e-12, 30.0, xtol=1e-13)))


def gibbs_error_spherical(alpha: float) -> float:
    """Generalisation error of spherical Gibbs learning, ε = arccos(R)/π with R from ``gibbs_overlap_spherical``;
    ε(0) = 1/2 and ε ≈ 0.625/α at large α (Engel & Van den Broeck ch. 2)."""
    return float(math.acos(gibbs_overlap_spherical(alpha)) / math.pi)


class BinaryGibbsBranch(NamedTuple):
    """The poor-generalisation RS branch of Ising Gibbs learning: overlap ``R`` < 1, conjugate ``R_hat``,
    entropy per weight ``entropy`` and Gibbs error ``error`` = arccos(R)/π."""

    R: float
    R_hat: float
    entropy: float
    error: float


def _binary_gibbs_conjugate(R: float, alpha: float) -> float:
    """R̂(R) = (α/(π√(1−R))) ∫Dt e^{−R t²/2}/H(−√R t) (stationarity of s in R)."""
    return alpha / (math.pi * math.sqrt(1.0 - R)) * _teacher_integral(R)


def _binary_gibbs_map(R_hat: float) -> float:
    """∫Dz tanh(√R̂ z + R̂) (stationarity of s in R̂ on the Nishimori line)."""
    a = math.sqrt(R_hat)
    return _gauss(lambda z: math.tanh(a * z + R_hat), breaks=(-a,))


def _binary_gibbs_functional(R: float, R_hat: float, alpha: float) -> float:
    """−R̂(1+R)/2 + ∫Dz ln 2cosh(√R̂ z + R̂) + 2α ∫Dt H(−u t) ln H(−u t) (stationary at the saddle point)."""
    a = math.sqrt(R_hat)
    return (-0.5 * R_hat * (1.0 + R) + _gauss(lambda z: _log_2cosh(a * z + R_hat), breaks=(-a,))
            + alpha * _teacher_energetic(R))


def gibbs_binary_branch(alpha: float) -> BinaryGibbsBranch:
    """The R < 1 RS branch of Gibbs learning with Ising (±1) student and teacher (Györgyi 1990; Sompolinsky,
    Tishby & Seung 1990), on the Nishimori line q = R:
    R = ∫Dz tanh(√R̂ z + R̂), R̂ = (α/(π√(1−R))) ∫Dt e^{−R t²/2}/H(−√R t),
    s = −R̂(1+R)/2 + ∫Dz ln 2cosh(√R̂ z + R̂) + 2α ∫Dt H(−u t) ln H(−u t), u = √(R/(1−R)).
    The branch is the smallest root of R = ∫Dz tanh(√R̂(R) z + R̂(R)) (the fixed point reached from R = 0); it
    exists up to the spinodal α_sp ≈ 1.49.

    Returns:
        ``BinaryGibbsBranch(R, R_hat, entropy, error)``.
    Raises:
        ValueError: α beyond the spinodal (no root below R = 1).
    """
    alpha = _check_alpha(alpha)
    if alpha == 0.0:
        return BinaryGibbsBranch(0.0, 0.0, math.log(2.0), 0.5)

    def gap(y):  # R = 1 − e^{−y}; positive at R = 0
        R = -math.expm1(-y)
        return _binary_gibbs_map(_binary_gibbs_conjugate(R, alpha)) - R

    ys = np.linspace(0.0, 12.0, 97)
    gaps = np.array([gap(y) for y in ys])
    below = np.nonzero(gaps <= 0.0)[0]
    if below.size:
        i = int(below[0])
        lo, hi = ys[i - 1], ys[i]
    else:  # near the spinodal both roots may fall between grid points: look at the minimum of the gap
        i = int(np.argmin(gaps[:-1]))
        res = optimize.minimize_scalar(gap, bounds=(ys[max(i - 1, 0)], ys[i + 1]), method="bounded",
                                       options={"xatol": 1e-12})
        if res.fun > 0.0:
            raise ValueError(f"alpha={alpha!r} is beyond the spinodal: the R < 1 branch does not exist")
        lo, hi = ys[max(i - 1, 0)], res.x
    y = optimize.brentq(gap, lo, hi, xtol=1e-13)
    R = -math.expm1(-y)
    R_hat = _binary_gibbs_conjugate(R, alpha)
    s = _binary_gibbs_functional(R, R_hat, alpha)
    return BinaryGibbsBranch(float(R), float(R_hat), float(s), float(math.acos(R) / math.pi))


def binary_gibbs_transition() -> float:
    """α_c of the first-order transition to perfect generalisation (Ising student and teacher): the α where the
    entropy of the R < 1 branch vanishes, ≈ 1.245 (Györgyi 1990; Sompolinsky, Tishby & Seung 1990)."""
    return float(optimize.brentq(lambda a: gibbs_binary_branch(a).entropy, 0.8, 1.45, xtol=1e-9))


def binary_spinodal(tol: float = 1e-6) -> float:
    """α_sp where the R < 1 branch of Ising Gibbs learning ends (bisection on its existence), ≈ 1.493: the
    algorithmic threshold of teacher–student inference for the binary perceptron (Zdeborová & Krzakala 2016)."""

    def exists(a: float) -> bool:
        try:
            gibbs_binary_branch(a)
            return True
        except ValueError:
            return False

    lo, hi = 1.3, 1.7
    if not exists(lo) or exists(hi):
        raise ValueError("the spinodal of the binary Gibbs branch is not in [1.3, 1.7]")
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if exists(mid) else (lo, mid)
    return float(0.5 * (lo + hi))
