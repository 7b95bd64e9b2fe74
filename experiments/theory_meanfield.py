"""Mean-field theory of signal propagation in deep random tanh networks: the order-to-chaos transition.

A depth-L fully connected network h^l = W^l φ(h^{l−1}) + b^l with W_ij ~ N(0, σ_w²/N), b_i ~ N(0, σ_b²) and
φ = tanh. In the infinite-width limit (B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein & S. Ganguli, "Exponential
expressivity in deep neural networks through transient chaos", NeurIPS 2016; S. S. Schoenholz, J. Gilmer,
S. Ganguli & J. Sohl-Dickstein, "Deep information propagation", ICLR 2017):

* length map (Poole eq. 3): q^l = σ_w² ∫Dz φ(√q^{l−1} z)² + σ_b², with fixed point q*;
* correlation map (Poole eq. 5): c^l = [σ_w² ∫Dz₁Dz₂ φ(u₁)φ(u₂) + σ_b²]/q*, u₁ = √q* z₁,
  u₂ = √q* (c z₁ + √(1−c²) z₂), with a stable fixed point c* (c* = 1 in the ordered phase);
* χ₁ = σ_w² ∫Dz φ'(√q* z)² (Poole eq. 7), the slope of the correlation map at c = 1 and the mean squared
  singular value of the layer-to-layer Jacobian; χ₁ = 1 is the order-to-chaos critical line;
* χ_c = σ_w² ∫Dz₁Dz₂ φ'(u₁)φ'(u₂) at c* (Schoenholz eq. 8) and the correlation depth ξ_c = −1/ln χ_c
  (Schoenholz eq. 9), which diverges on the critical line. In the ordered phase χ_c = χ₁.

Gaussian integrals use the trapezoidal rule on z ∈ [−10, 10] (float64, ``N_NODES`` = 401 nodes per
dimension; exponentially convergent for these analytic integrands: error < 1e-12 for q ≲ 20).
Known numbers: σ_w²,c = 1 at σ_b² = 0 (φ'(0) = 1), and σ_w²,c ≈ 1.76 at σ_b² = 0.05 (the critical point of Schoenholz et al. 2017, Fig. 1, whose ξ_c panel uses
σ_b² = 0.05).

``finite_width_correction`` adds the leading 1/N correction to ⟨q̂⟩ and ⟨χ̂₁⟩ of a width-N network (a small-noise
expansion of the stochastic length map; derived in its docstring) — the finite-width allowance of the
``edge-of-chaos`` figure.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from scipy import optimize

__all__ = [
    "N_NODES",
    "gaussian_average",
    "bivariate_average",
    "length_map",
    "q_star",
    "chi_1",
    "correlation_map",
    "c_star",
    "chi_c",
    "xi_c",
    "critical_sigma_w2",
    "MeanFieldTrajectory",
    "mean_field_trajectory",
    "FiniteWidthCorrection",
    "finite_width_correction",
]

N_NODES = 401
Z_MAX = 10.0


def _phi(u):
    return np.tanh(u)


def _dphi(u):
    return 1.0 / np.cosh(u) ** 2


@functools.lru_cache(maxsize=4)
def _nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights w of the trapezoidal rule for the standard normal measure Dz on [−Z_MAX, Z_MAX].

    For integrands analytic in a strip |Im z| < d the trapezoidal rule converges like exp(−2π d/h)
    (Trefethen & Weideman, SIAM Rev. 56, 385 (2014)); for tanh(√q z) and its derivatives d = π/(2√q), so
    h = 0.05 gives errors < 1e-12 up to q ≈ 20, where Gauss–Hermite would need thousands of nodes.
    """
    z = np.linspace(-Z_MAX, Z_MAX, n)
    w = np.exp(-0.5 * z * z) * (z[1] - z[0]) / math.sqrt(2.0 * math.pi)
    return z, w


def _check_variances(sigma_w2, sigma_b2) -> tuple[float, float]:
    sw2, sb2 = float(sigma_w2), float(sigma_b2)
    if not (math.isfinite(sw2) and sw2 > 0):
        raise ValueError(f"sigma_w2 must be finite and > 0, got {sigma_w2!r}")
    if not (math.isfinite(sb2) and sb2 >= 0):
        raise ValueError(f"sigma_b2 must be finite and >= 0, got {sigma_b2!r}")
    return sw2, sb2


def gaussian_average(f, q: float, n: int = N_NODES) -> float:
    """∫Dz f(√q z) for a vectorised f, by the n-point trapezoidal rule on [−10, 10]."""
    z, w = _nodes(n)
    return float(np.sum(w * f(math.sqrt(max(q, 0.0)) * z)))


def bivariate_average(f1, f2, q: float, c: float, n: int = N_NODES) -> float:
    """∫Dz₁Dz₂ f1(u₁) f2(u₂) with u₁ = √q z₁, u₂ = √q (c z₁ + √(1−c²) z₂) (correlation c ∈ [−1, 1])."""
    z, w = _nodes(n)
    c = min(max(float(c), -1.0), 1.0)
    s = math.sqrt(max(q, 0.0))
    u1 = s * z[:, None]
    u2 = s * (c * z[:, None] + math.sqrt(max(1.0 - c * c, 0.0)) * z[None, :])
    return float(np.sum(w[:, None] * w[None, :] * f1(u1) * f2(u2)))


def length_map(q: float, sigma_w2: float, sigma_b2: float) -> float:
    """One step of the length map q → σ_w² ∫Dz tanh²(√q z) + σ_b² (Poole et al. 2016, eq. 3)."""
    sw2, sb2 = _check_variances(sigma_w2, sigma_b2)
    return sw2 * gaussian_average(lambda u: _phi(u) ** 2, q) + sb2


def q_star(sigma_w2: float, sigma_b2: float) -> float:
    """The stable fixed point q* of the length map.

    For σ_b² > 0 the unique root of F(q) = length_map(q) − q on [σ_b², σ_w² + σ_b²] (tanh² < 1 bounds it).
    For σ_b² = 0, q = 0 is a fixed point; it is the stable one iff σ_w² ≤ 1 (slope of the map at 0 is σ_w²),
    otherwise the nonzero root is returned.
    """
    sw2, sb2 = _check_variances(sigma_w2, sigma_b2)
    F = lambda q: length_map(q, sw2, sb2) - q  # noqa: E731
    if sb2 == 0.0:
        if sw2 <= 1.0:
            return 0.0
        return float(optimize.brentq(F, 1e-12 * sw2 + (sw2 - 1.0) * 1e-3, sw2, xtol=1e-14, rtol=1e-13))
    return float(optimize.brentq(F, sb2, sw2 + sb2, xtol=1e-14, rtol=1e-13))


def chi_1(sigma_w2: float, sigma_b2: float) -> float:
    """χ₁ = σ_w² ∫Dz [tanh'(√q* z)]² (Poole et al. 2016, eq. 7): the mean squared singular value of the
    layer-to-layer Jacobian; < 1 ordered, > 1 chaotic."""
    sw2, sb2 = _check_variances(sigma_w2, sigma_b2)
    return sw2 * gaussian_average(lambda u: _dphi(u) ** 2, q_star(sw2, sb2))


def correlation_map(c: float, sigma_w2: float, sigma_b2: float, q: float | None = None) -> float:
    """One step of the correlation map at fixed length q (default q*) (Poole et al. 2016, eq. 5):
    c → [σ_w² ∫Dz₁Dz₂ tanh(u₁) tanh(u₂) + σ_b²]/q_next with q_next = length_map(q)."""
    sw2, sb2 = _check_variances(sigma_w2, sigma_b2)
    q = q_star(sw2, sb2) if q is None else float(q)
    q_next = length_map(q, sw2, sb2)
    if q_next <= 0.0:
        return 1.0
    return (sw2 * bivariate_average(_phi, _phi, q, c) + sb2) / q_next


def c_star(sigma_w2: float, sigma_b2: float) -> float:
    """The stable fixed point c* of the correlation map: 1 in the ordered phase (χ₁ ≤ 1); in the chaotic phase
    the root of c_map(c) − c in [0, 1) (0 when σ_b² = 0, where the map is odd in c)."""
    sw2, sb2 = _check_variances(sigma_w2, sigma_b2)
    if chi_1(sw2, sb2) <= 1.0:
        return 1.0
    q = q_star(sw2, sb2)
    G = lambda c: correlation_map(c, sw2, sb2, q) - c  # noqa: E731
    if G(0.0) <= 1e-14:
        return 0.0
    hi = 1.0 - 1e-9
    if G(hi) >= 0.0:  # χ₁ so close to 1 that c* is within 1e-9 of 1
        return 1.0
    return float(optimize.brentq(G, 0.0, hi, xtol=1e-13, rtol=1e-13))


def chi_c(sigma_w2: float, sigma_b2: float) -> float:
    """χ_c = σ_w² ∫Dz₁Dz₂ tanh'(u₁) tanh'(u₂) at c* (Schoenholz et al. 2017, eq. 8): the slope of the
    correlation map at its stable fixed point (= χ₁ in the ordered phase)."""
    sw2, sb2 = _check_variances(sigma_w2, sigma_b2)
    q, c = q_star(sw2, sb2), c_star(sw2, sb2)
    return sw2 * bivariate_average(_dphi, _dphi, q, c)


def xi_c(sigma_w2: float, sigma_b2: float) -> float:
    """Correlation depth ξ_c = −1/ln χ_c (Schoenholz et al. 2017, eq. 9); +inf where χ_c = 1 (critical line)."""
    x = chi_c(sigma_w2, sigma_b2)
    if x >= 1.0:
        return math.inf
    return -1.0 / math.log(x)


def critical_sigma_w2(sigma_b2: float) -> float:
    """The critical weight variance: the root in σ_w² of χ₁(σ_w², σ_b²) = 1 (1 at σ_b² = 0; ≈ 1.761 at
    σ_b² = 0.05)."""
    _, sb2 = _check_variances(1.0, sigma_b2)
    if sb2 == 0.0:
        return 1.0
    hi = 2.0
    while chi_1(hi, sb2) < 1.0:  # χ₁ grows without bound in σ_w²
        hi *= 2.0
    return float(optimize.brentq(lambda s: chi_1(s, sb2) - 1.0, 1.0, hi, xtol=1e-12, rtol=1e-12))


class MeanFieldTrajectory(NamedTuple):
    """Infinite-width layer-by-layer signal propagation of two inputs of equal length.

    Fields:
        q: float64 [depth] — pre-activation variance q^l of layers l = 1..depth.
        c: float64 [depth] — correlation c^l of the two inputs' pre-activations at layers 1..depth.
    """

    q: np.ndarray
    c: np.ndarray


def mean_field_trajectory(q_in: float, c_in: float, sigma_w2: float, sigma_b2: float,
                          depth: int) -> MeanFieldTrajectory:
    """q^l and c^l for two inputs with |x|²/N = q_in and correlation c_in, layer by layer.

    The first layer acts on the raw inputs (q¹ = σ_w² q_in + σ_b², c¹ = (σ_w² c_in q_in + σ_b²)/q¹); later
    layers apply the length and correlation maps at the current (not yet converged) length.

    Args:
        q_in: input squared length per component (> 0).
        c_in: input correlation in [−1, 1].
        sigma_w2, sigma_b2: weight and bias variances.
        depth: number of layers (≥ 1).
    Returns:
        ``MeanFieldTrajectory`` with arrays of shape [depth].
    """
    sw2, sb2 = _check_variances(sigma_w2, sigma_b2)
    if not (math.isfinite(q_in) and q_in > 0):
        raise ValueError(f"q_in must be finite and > 0, got {q_in!r}")
    if not (-1.0 <= c_in <= 1.0):
        raise ValueError(f"c_in must lie in [-1, 1], got {c_in!r}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    q = sw2 * q_in + sb2
    c = (sw2 * c_in * q_in + sb2) / q
    qs, cs = [q], [c]
    for _ in range(depth - 1):
        q_next = length_map(q, sw2, sb2)
        c = (sw2 * bivariate_average(_phi, _phi, q, c) + sb2) / q_next
        q = q_next
        qs.append(q)
        cs.append(c)
    return MeanFieldTrajectory(np.asarray(qs), np.asarray(cs))


class FiniteWidthCorrection(NamedTuple):
    """Leading 1/N corrections to layer averages of a width-N network in the stationary regime.

    Fields:
        q: ⟨q̂⟩ − q* (q̂ = |h^l|²/N, the measured pre-activation variance).
        chi_1: ⟨χ̂₁⟩ − χ₁ (χ̂₁ = ‖∂h^{l+1}/∂h^l‖_F²/N).
        var_q: the stationary variance of the conditional length Q_l.
    """

    q: float
    chi_1: float
    var_q: float


def finite_width_correction(sigma_w2: float, sigma_b2: float, width: int) -> FiniteWidthCorrection:
    """The O(1/N) corrections to ⟨q̂⟩ and ⟨χ̂₁⟩ of a width-N random tanh network.

    Derivation (small-noise expansion of the stochastic length map). Given layer l−1, the pre-activations
    h^l_j = Σ_k W_jk x_k + b_j are i.i.d. N(0, Q_l) with Q_l = σ_w² |x^{l−1}|²/N + σ_b². The empirical average
    |x^l|²/N over N i.i.d. units makes Q a Markov chain Q_{l+1} = f(Q_l) + ε_l, with f the length map and
    Var(ε | Q) = v(Q)/N, v(Q) = σ_w⁴ Var_z[tanh²(√Q z)]. Writing Q = q* + η and expanding to second order,
    the stationary moments are Var η = v(q*)/(N (1 − f'²)) and ⟨η⟩ = ½ f'' Var η/(1 − f'), both O(1/N).
    The Jacobian J = W^{l+1} diag φ'(h^l) uses the fresh W^{l+1}, so ⟨‖J‖_F²/N | Q_l⟩ = σ_w² g(Q_l) exactly,
    g(Q) = ∫Dz φ'(√Q z)²; hence ⟨χ̂₁⟩ − χ₁ = σ_w² [g'(q*)⟨η⟩ + ½ g''(q*) Var η] + O(1/N²), and
    ⟨q̂⟩ − q* = ⟨η⟩. (The neglected terms are O(1/N²) away from the critical point, where 1 − f' → 0 only at
    σ_b² = 0, q* = 0 and there v(0) = 0.) Derivatives by central differences of the quadratures.

    Args:
        sigma_w2, sigma_b2: weight and bias variances.
        width: N ≥ 1.
    Returns:
        ``FiniteWidthCorrection`` (all zero when q* = 0).
    """
    sw2, sb2 = _check_variances(sigma_w2, sigma_b2)
    if not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    qs = q_star(sw2, sb2)
    if qs <= 0.0:
        return FiniteWidthCorrection(0.0, 0.0, 0.0)
    f = lambda q: length_map(q, sw2, sb2)  # noqa: E731
    g = lambda q: gaussian_average(lambda u: _dphi(u) ** 2, q)  # noqa: E731
    h = 1e-3 * qs
    f1 = (f(qs + h) - f(qs - h)) / (2 * h)
    f2 = (f(qs + h) - 2 * f(qs) + f(qs - h)) / h**2
    g1 = (g(qs + h) - g(qs - h)) / (2 * h)
    g2 = (g(qs + h) - 2 * g(qs) + g(qs - h)) / h**2
    m2 = gaussian_average(lambda u: _phi(u) ** 4, qs)
    m1 = gaussian_average(lambda u: _phi(u) ** 2, qs)
    v = sw2**2 * (m2 - m1**2)
    var = v / (width * (1.0 - f1**2))
    mean = 0.5 * f2 * var / (1.0 - f1)
    return FiniteWidthCorrection(float(mean), float(sw2 * (g1 * mean + 0.5 * g2 * var)), float(var))
