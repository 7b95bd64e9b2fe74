"""Theory curves for the spin-model figures (``sk`` and ``hopfield``): closed forms and small solvers.

Sherrington–Kirkpatrick model, H = −Σ_{i<j} J_ij s_i s_j with J_ij ~ N(0, 1/N) (``models.sk``), per spin:

* paramagnet (T > 1): u = −β/2, c = β²/2 (D. Sherrington & S. Kirkpatrick, PRL 35, 1792 (1975), Eq. (9) with
  J₀ = 0), with the O(1/N) correction of the quenched free energy from the log-normal limit of Z_N / E Z_N
  (M. Aizenman, J. L. Lebowitz & D. Ruelle, Commun. Math. Phys. 112, 3 (1987), Thm. 2.2):
  E ln Z_N = N ln 2 + β²(N − 1)/4 + ¼ ln(1 − β²) + β²/4 + o(1);
* spin-glass susceptibility χ_SG = N [⟨q²⟩] = 1/(1 − β²) above T = 1 (de Almeida & Thouless, J. Phys. A 11, 983
  (1978); K. Binder & A. P. Young, Rev. Mod. Phys. 58, 801 (1986), Eq. (5.23)); at finite N its annealed value
  (one binomial sum) gives the size of the O(1/N) correction;
* replica-symmetric solution below T = 1 (SK 1975 Eqs. (12)–(13)): q = E_z tanh²(β√q z), u = −(β/2)(1 − q²) — not
  the true low-temperature phase (unstable below the AT line), drawn for context only, with the Parisi
  ground-state energy e₀ = −0.763167 (A. Crisanti & T. Rizzo, PRE 65, 046137 (2002); G. Parisi, J. Phys. A 13,
  1101 (1980));
* exact enumeration of u, c and ⟨q²⟩ for one coupling matrix (N ≤ 20), in NumPy (an engine-independent check).

Hopfield model at T = 0, replica-symmetric retrieval state (D. J. Amit, H. Gutfreund & H. Sompolinsky, Ann. Phys.
173, 30 (1987), Eqs. (4.11)–(4.13) at β → ∞): m = erf(m/√(2αr)), C = √(2/(παr)) exp(−m²/(2αr)),
r = 1/(1 − C)². With y = m/√(2αr) these reduce to erf(y) = y(√(2α) + (2/√π) e^{−y²}), i.e. the load as an
explicit function of y, α(y) = [erf(y)/(√2 y) − √(2/π) e^{−y²}]²; the capacity α_c = max_y α(y) ≈ 0.137905
(RS; 1RSB gives 0.138186: J. Steffan & R. Kühn, Z. Phys. B 95, 249 (1994)) with m(α_c) ≈ 0.967.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, optimize, special

__all__ = [
    "SK_GROUND_STATE_ENERGY",
    "HOPFIELD_ALPHA_C_RS",
    "HOPFIELD_ALPHA_C_SIMULATION",
    "sk_paramagnetic_energy",
    "sk_paramagnetic_specific_heat",
    "sk_spin_glass_susceptibility",
    "sk_annealed_susceptibility",
    "sk_rs_overlap",
    "sk_rs_energy",
    "sk_rs_specific_heat",
    "sk_exact_thermodynamics",
    "hopfield_load_of_y",
    "hopfield_capacity",
    "hopfield_retrieval_overlap",
]

SK_GROUND_STATE_ENERGY = -0.7631667
"""Parisi ground-state energy per spin of the SK model, N → ∞ (Crisanti & Rizzo, PRE 65, 046137 (2002))."""

HOPFIELD_ALPHA_C_RS = 0.137905
"""AGS replica-symmetric T = 0 capacity (Amit, Gutfreund & Sompolinsky 1987; digits: Steffan & Kühn 1994)."""

HOPFIELD_ALPHA_C_SIMULATION = (0.145, 0.009)
"""Capacity from zero-temperature simulations, value ± error, as quoted by Steffan & Kühn (1994)."""


def _check_beta(beta, name: str = "beta", upper: float | None = None) -> np.ndarray:
    b = np.asarray(beta, np.float64)
    if not np.all(np.isfinite(b)) or np.any(b < 0):
        raise ValueError(f"{name} must be finite and >= 0, got {beta!r}")
    if upper is not None and np.any(b >= upper):
        raise ValueError(f"{name} must be < {upper} (paramagnetic phase), got {beta!r}")
    return b


def _check_n(n) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (or None for N → ∞), got {n!r}")
    return int(n)


# ------------------------------------------------------------------------------------------------ SK paramagnet
def sk_paramagnetic_energy(beta, n: int | None = None):
    """Disorder-averaged energy per spin of the SK paramagnet (β < 1).

    u = −β/2 for N → ∞; for finite N the Aizenman–Lebowitz–Ruelle term (derivative of ¼ ln(1−β²) + β²/4) adds
    +β / (2N(1 − β²)), so u_N = −β/2 + β/(2N(1−β²)) + o(1/N).

    Args:
        beta: float or [K] inverse temperatures in [0, 1).
        n: number of spins, or None for N → ∞.
    Returns:
        u, same shape as ``beta``.
    """
    b = _check_beta(beta, upper=1.0)
    n = _check_n(n)
    u = -0.5 * b
    if n is not None:
        u = u + b / (2.0 * n * (1.0 - b**2))
    return u


def sk_paramagnetic_specific_heat(beta, n: int | None = None):
    """Disorder-averaged specific heat per spin c = β²[Var E]/N of the SK paramagnet (β < 1).

    c = β²/2 for N → ∞; c_N = −β² du_N/dβ = β²/2 − β²(1 + β²) / (2N(1 − β²)²) + o(1/N) (ALR 1987).

    Args:
        beta: float or [K] in [0, 1). n: number of spins or None.
    Returns:
        c, same shape as ``beta``.
    """
    b = _check_beta(beta, upper=1.0)
    n = _check_n(n)
    c = 0.5 * b**2
    if n is not None:
        c = c - b**2 * (1.0 + b**2) / (2.0 * n * (1.0 - b**2) ** 2)
    return c


def sk_spin_glass_susceptibility(beta):
    """χ_SG = N[⟨q²⟩] = 1/(1 − β²) of the SK paramagnet, N → ∞ (β < 1); paramagnetic [⟨q²⟩] = χ_SG / N."""
    b = _check_beta(beta, upper=1.0)
    return 1.0 / (1.0 - b**2)


def sk_annealed_susceptibility(beta, n: int):
    """Annealed N⟨q²⟩ at finite N: E_J[Σ q² e^{−βH(σ)−βH(τ)}] / E_J[Z²] for two replicas σ, τ.

    Averaging e^{−β(H(σ)+H(τ))} over J_ij ~ N(0, 1/N) leaves a weight exp(β²N q²/2) on the overlap
    q = σ·τ/N, whose law under uniform spins is binomial: one sum over Nq ∈ {−N, −N+2, ..., N}. Equals 1 at β = 0
    and → 1/(1 − β²) for N → ∞; its deviation from that limit is the size of the O(1/N) corrections that the
    quenched N[⟨q²⟩] also has (the two differ at the same order).

    Args:
        beta: float or [K] ≥ 0 (any β; no phase restriction at finite N). n: number of spins ≥ 2.
    Returns:
        N⟨q²⟩_annealed, same shape as ``beta``.
    """
    b = _check_beta(beta)
    n = _check_n(n)
    k = np.arange(n + 1)
    q = (2.0 * k - n) / n
    log_binom = special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
    logw = log_binom[None, :] + 0.5 * np.ravel(b)[:, None] ** 2 * n * q[None, :] ** 2
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    out = n * (w * q**2).sum(1) / w.sum(1)
    return out.reshape(b.shape)


# ------------------------------------------------------------------------------------------------ SK, RS below T_c
def sk_rs_overlap(beta: float) -> float:
    """Replica-symmetric Edwards–Anderson order parameter: the largest root of q = E_z tanh²(β√q z), z ~ N(0, 1).

    Zero for β ≤ 1 (SK 1975, Eq. (13)); solved by Brent's method with adaptive Gaussian quadrature (the
    integrand sharpens like a step at large β, so fixed Gauss–Hermite nodes would not do).

    Args:
        beta: inverse temperature ≥ 0.
    Returns:
        q_RS(β) ∈ [0, 1).
    """
    b = float(_check_beta(beta))
    if b <= 1.0:
        return 0.0

    def one_minus_rhs(q):  # 1 − E tanh² = E sech²(β√q z), computed directly for accuracy as q → 1
        s = b * math.sqrt(q)
        def f(z):  # φ(z)·sech²(s z), overflow-free: sech² x = 4e^{−2x} / (1 + e^{−2x})² for x ≥ 0
            t = math.exp(-2.0 * s * z)
            return math.exp(-0.5 * z * z) * 4.0 * t / (1.0 + t) ** 2

        # the sech² peak has width ~1/s: split there so the adaptive rule resolves it at any β
        val = sum(integrate.quad(f, a, b, limit=200, epsabs=1e-14, epsrel=1e-11)[0]
                  for a, b in ((0.0, min(10.0 / s, 40.0)), (min(10.0 / s, 40.0), 40.0)))
        return 2.0 * val / math.sqrt(2.0 * math.pi)

    g = lambda q: (1.0 - one_minus_rhs(q)) - q  # noqa: E731  g > 0 just above 0 when β > 1, g(1) < 0
    lo = min(1e-6, 0.25 * (b * b - 1.0) / (2.0 * b**4))
    while g(lo) <= 0.0 and lo > 1e-14:
        lo *= 0.1
    return float(optimize.brentq(g, lo, 1.0, xtol=1e-13, rtol=1e-12))


def sk_rs_energy(beta):
    """Replica-symmetric energy per spin u = −(β/2)(1 − q_RS²) (SK 1975); −β/2 above T = 1, → −√(2/π) as T → 0.

    Args:
        beta: float or [K] ≥ 0.
    Returns:
        u_RS, same shape.
    """
    b = _check_beta(beta)
    q = np.vectorize(sk_rs_overlap, otypes=[float])(b)
    return -0.5 * b * (1.0 - q**2)


def sk_rs_specific_heat(beta, h: float = 1e-4):
    """Replica-symmetric specific heat per spin c = −β² du_RS/dβ (central differences of ``sk_rs_energy``).

    Args:
        beta: float or [K] > h. h: difference step in β.
    Returns:
        c_RS, same shape.
    """
    b = _check_beta(beta)
    if np.any(b <= h):
        raise ValueError(f"beta must exceed the difference step h={h}, got {beta!r}")
    return -(b**2) * (sk_rs_energy(b + h) - sk_rs_energy(b - h)) / (2.0 * h)


# ------------------------------------------------------------------------------------------------ SK, exact
def sk_exact_thermodynamics(J, betas) -> dict[str, np.ndarray]:
    """Exact u = ⟨E⟩/N, c = β² Var(E)/N and ⟨q²⟩ (two independent replicas) of one Ising coupling matrix.

    Sums over all 2^N states in float64; ⟨q²⟩ = (1/N²) Σ_ij ⟨s_i s_j⟩². H = −½ sᵀJs (``models.sk.SK``).

    Args:
        J: [N, N] symmetric couplings, zero diagonal, N ≤ 20.
        betas: [K] inverse temperatures ≥ 0.
    Returns:
        {"u": [K], "c": [K], "q2": [K]}.
    """
    J = np.asarray(J, np.float64)
    if J.ndim != 2 or J.shape[0] != J.shape[1]:
        raise ValueError(f"J must be a square matrix [N, N], got shape {J.shape}")
    n = J.shape[0]
    if n > 20:
        raise ValueError(f"exact enumeration needs N <= 20 spins, got N={n}")
    b = np.atleast_1d(_check_beta(betas))
    s = (((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1) * 2.0 - 1.0)
    e = -0.5 * np.einsum("si,si->s", s @ J, s)
    out = {k: np.empty(b.shape) for k in ("u", "c", "q2")}
    for k, beta in enumerate(b):
        w = np.exp(-beta * (e - e.min()))
        p = w / w.sum()
        u = p @ e
        corr = s.T @ (s * p[:, None])
        out["u"][k] = u / n
        out["c"][k] = beta**2 * (p @ (e - u) ** 2) / n
        out["q2"][k] = np.sum(corr**2) / n**2
    return out


# ------------------------------------------------------------------------------------------------ Hopfield
def hopfield_load_of_y(y):
    """The AGS T = 0 load as a function of y = m/√(2αr): α(y) = [erf(y)/(√2 y) − √(2/π) e^{−y²}]².

    Args:
        y: float or array > 0.
    Returns:
        α(y), same shape (NaN where the bracket is negative: no retrieval solution).
    """
    y = np.asarray(y, np.float64)
    if np.any(~np.isfinite(y)) or np.any(y <= 0):
        raise ValueError(f"y must be finite and > 0, got {y!r}")
    g = special.erf(y) / (math.sqrt(2.0) * y) - math.sqrt(2.0 / math.pi) * np.exp(-(y**2))
    return np.where(g > 0, g**2, np.nan)


def _neg_load(y):
    return -float(hopfield_load_of_y(y))


def hopfield_capacity() -> tuple[float, float]:
    """The AGS T = 0 capacity: (α_c, m(α_c)) with α_c = max_y α(y), m = erf(y*) ≈ (0.137905, 0.9674).

    Returns:
        (alpha_c, m_c).
    """
    res = optimize.minimize_scalar(_neg_load, bounds=(0.5, 3.0), method="bounded",
                                   options={"xatol": 1e-12})
    return -float(res.fun), float(special.erf(res.x))


def hopfield_retrieval_overlap(alpha):
    """T = 0 replica-symmetric retrieval overlap m(α) (AGS 1987): m = erf(y) on the retrieval branch y > y_c.

    Solves α(y) = α for the largest root y (Brent's method on [y_c, 10]); 0 above α_c (the retrieval solution
    disappears discontinuously — the non-retrieval spin-glass state has m = 0 for N → ∞), 1 at α = 0.

    Args:
        alpha: float or [K] loads P/N ≥ 0.
    Returns:
        m, same shape.
    """
    a = np.asarray(alpha, np.float64)
    if np.any(~np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"alpha must be finite and >= 0, got {alpha!r}")
    res = optimize.minimize_scalar(_neg_load, bounds=(0.5, 3.0), method="bounded", options={"xatol": 1e-12})
    y_c, a_c = float(res.x), -float(res.fun)

    def one(x):
        if x == 0.0:
            return 1.0
        if x > a_c:
            return 0.0
        hi = 10.0  # α(10) ≈ 5·10⁻³ ... below any load of interest; extend if needed
        while float(hopfield_load_of_y(hi)) > x:
            hi *= 2.0
        y = optimize.brentq(lambda t: float(hopfield_load_of_y(t)) - x, y_c, hi, xtol=1e-14)
        return float(special.erf(y))

    return np.vectorize(one, otypes=[float])(a)
