"""Generalisation of Bayesian deep linear networks: back-propagating kernel renormalisation (BPKR) and its exact
finite-width counterpart.

Network and ensemble (the conventions of ``experiments.deep_linear``): f(x) = x W_1 W_2 ⋯ W_{L+1} with L hidden
layers of width N, input dimension N₀ and one output; a Gaussian prior with variance σ²/fan_in on every weight; the
Gibbs posterior at temperature T = 1/β on P examples (X [P, N₀], y [P]),

    p(Θ) ∝ prior(Θ) · exp(−½ β Σ_μ (f(x_μ) − y_μ)²).

This is the ensemble of Q. Li and H. Sompolinsky, "Statistical mechanics of deep linear neural networks: the
back-propagating kernel renormalization", Phys. Rev. X 11, 031059 (2021) (their weights carry the 1/√N of the
forward pass; the two parametrisations are the same distribution over functions).

Integrating out the read-out and then one layer after the other (BPKR, Li & Sompolinsky Sec. III) leaves, for a
single output, an integral over one scalar per hidden layer: given u = (u₁, …, u_L), the predictor is the Gaussian
process with the *renormalised* kernel

    K_U(x, x') = c · U · x·x'/N₀,   U = Π_l u_l,   c = σ^{2(L+1)}  (the NNGP kernel of the linear network),

and the u_l are distributed with the effective Hamiltonian (their H_eff, in our normalisation u_l = 1 ⇔ GP)

    H(u) = Σ_l (N/2)(u_l − log u_l) + g(U),   g(U) = ½ yᵀ(c U G + T I)⁻¹ y + ½ log det(c U G + T I),

G = X Xᵀ/N₀. At large N, P with α = P/N fixed the u_l concentrate at the saddle point of H (all equal, u_l = u):

    (N/2)(u − 1) + U g'(U) = 0,   U = u^L      ("self-consistent equation" for the renormalisation u),

which at T = 0 (P ≤ N₀) becomes u^{L+1} − (1 − α) u^L − α r = 0 with r = yᵀ(cG)⁻¹y / P
(``bpkr_renormalisation_zero_temperature``). N → ∞ at fixed P gives u = 1: the NNGP / kernel-ridge posterior.

Exact finite width. The Gaussian identity behind BPKR holds at any N: each u_l is a Gamma(N/2, rate N/2)
variable a priori (mean 1) and H(u) without the saddle point is the exact posterior over them (with prior density
u^{N/2−1}e^{−Nu/2}; the saddle point keeps (N/2)(u − log u)). So the exact posterior is a scale mixture of GPs
(J. A. Zavatone-Veth & C. Pehlevan, "Depth induces scale-averaging in overparameterized linear Bayesian neural
networks", Asilomar 2021, arXiv:2111.11954; B. Hanin & A. Zlokapa, PNAS 120, e2301345120 (2023)):
``exact_generalisation_error`` integrates it in one dimension over S = Σ_l log u_l.

Generalisation error (Li & Sompolinsky Sec. IV), for test inputs x ~ N(0, I_{N₀}) and the noise-free teacher
y*(x) = w*·x/√N₀, averaged over test inputs and the Gibbs posterior: with w_eff = W_1⋯W_{L+1} the end-to-end map,

    ε_g = ⟨(f(x) − y*(x))²⟩ = ‖⟨w_eff⟩ − w*/√N₀‖² + tr Cov(w_eff)     (bias + variance).

Given U, w_eff is Gaussian: mean c U Xᵀ(cUG + T)⁻¹ y / N₀, covariance (cU/N₀)[I − (cU/N₀) Xᵀ(cUG + T)⁻¹X].
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import optimize, special

__all__ = [
    "LinearTask",
    "linear_task",
    "GeneralisationError",
    "nngp_kernel_scale",
    "effective_hamiltonian",
    "error_at_scale",
    "gp_generalisation_error",
    "bpkr_renormalisation",
    "bpkr_renormalisation_zero_temperature",
    "bpkr_generalisation_error",
    "exact_generalisation_error",
    "gibbs_error_matched_prior",
]


class LinearTask(NamedTuple):
    """One data set in the spectral form every solver here uses (build with ``linear_task``).

    Fields:
        lam: float [P] — eigenvalues of G = X Xᵀ/N₀ (≥ 0).
        z: float [P] — y in G's eigenbasis.
        s: float [r] — singular values of X/√N₀ (r = min(P, N₀)), s² the nonzero part of ``lam``.
        yA: float [r] — y along the left singular vectors of X/√N₀.
        wB: float [r] — w* along the right singular vectors.
        w_norm2: float [] — ‖w*‖².
        n_in: N₀.
    """

    lam: np.ndarray
    z: np.ndarray
    s: np.ndarray
    yA: np.ndarray
    wB: np.ndarray
    w_norm2: float
    n_in: int


class GeneralisationError(NamedTuple):
    """ε_g = bias + variance (see the module docstring); ``u`` the per-layer renormalisation (saddle point),
    or the posterior mean of U^{1/L} (exact mixture), 1 for the GP."""

    total: float
    bias: float
    variance: float
    u: float


def linear_task(X, y, w_teacher) -> LinearTask:
    """Spectral form of a data set: inputs X [P, N₀], targets y [P], teacher w* [N₀] (float64 on the host)."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64).reshape(-1)
    w = np.asarray(w_teacher, np.float64).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0] or X.shape[1] != w.shape[0]:
        raise ValueError(f"linear_task: need X [P, N0], y [P], w_teacher [N0]; got shapes {X.shape}, {y.shape}, "
                         f"{w.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y)) and np.all(np.isfinite(w))):
        raise ValueError("linear_task: X, y and w_teacher must be finite")
    n_in = X.shape[1]
    A, s, Bt = np.linalg.svd(X / math.sqrt(n_in), full_matrices=False)
    lam, V = np.linalg.eigh(X @ X.T / n_in)
    return LinearTask(np.clip(lam, 0.0, None), V.T @ y, s, A.T @ y, Bt @ w, float(w @ w), n_in)


def nngp_kernel_scale(n_hidden: int, sigma2: float) -> float:
    """c = σ^{2(L+1)}: the infinite-width (NNGP) kernel of the deep linear network is c·x·x'/N₀."""
    return float(sigma2) ** (int(n_hidden) + 1)


def _check(n_hidden, sigma2, temperature, width=None):
    if isinstance(n_hidden, bool) or not isinstance(n_hidden, (int, np.integer)) or n_hidden < 0:
        raise ValueError(f"n_hidden must be an integer >= 0, got {n_hidden!r}")
    if not (math.isfinite(sigma2) and sigma2 > 0):
        raise ValueError(f"sigma2 must be finite and > 0, got {sigma2!r}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be finite and >= 0, got {temperature!r}")
    if width is not None and (not math.isfinite(width) or width <= 0):
        raise ValueError(f"width must be > 0, got {width!r}")


def _g_terms(task: LinearTask, cU, T):
    """g(U) and U g'(U) for an array cU [...] (broadcast over the eigenvalues)."""
    cU = np.asarray(cU, np.float64)[..., None]
    d = cU * task.lam + T
    g = 0.5 * np.sum(task.z**2 / d + np.log(d), -1)
    ug = 0.5 * np.sum(cU * task.lam / d - cU * task.lam * task.z**2 / d**2, -1)
    return g, ug


def effective_hamiltonian(task: LinearTask, u, *, width: float, n_hidden: int, sigma2: float, temperature: float):
    """Li–Sompolinsky's H_eff at equal u_l = u (per layer): L·(N/2)(u − log u) + g(u^L), for u [...] > 0."""
    _check(n_hidden, sigma2, temperature, width)
    u = np.asarray(u, np.float64)
    c = nngp_kernel_scale(n_hidden, sigma2)
    g, _ = _g_terms(task, c * u**n_hidden, temperature)
    return n_hidden * 0.5 * width * (u - np.log(u)) + g


def error_at_scale(task: LinearTask, U, *, c: float, temperature: float):
    """Bias, variance and predictor coefficients of the GP with kernel c·U·x·x'/N₀ (arrays over U [...]).

    Returns:
        ``(bias [...], variance [...], phi [..., r])`` with √N₀·⟨w_eff⟩ = B·phi (B the right singular vectors).
    """
    T = float(temperature)
    cU = c * np.asarray(U, np.float64)[..., None]
    d = cU * task.s**2 + T
    if T == 0.0 and np.any(task.s <= 0):
        raise ValueError("temperature 0 needs X of full row rank (P <= N0 and no zero singular values)")
    phi = cU * task.s * task.yA / d
    bias = (task.w_norm2 - 2.0 * np.sum(phi * task.wB, -1) + np.sum(phi**2, -1)) / task.n_in
    variance = cU[..., 0] * (1.0 - np.sum(cU * task.s**2 / d, -1) / task.n_in)
    return bias, variance, phi


def gp_generalisation_error(task: LinearTask, *, n_hidden: int, sigma2: float, temperature: float
                            ) -> GeneralisationError:
    """The N → ∞ limit (NNGP / Bayesian ridge regression with kernel σ^{2(L+1)} x·x'/N₀): U = 1."""
    _check(n_hidden, sigma2, temperature)
    b, v, _ = error_at_scale(task, 1.0, c=nngp_kernel_scale(n_hidden, sigma2), temperature=temperature)
    return GeneralisationError(float(b + v), float(b), float(v), 1.0)


def bpkr_renormalisation(task: LinearTask, *, width: float, n_hidden: int, sigma2: float, temperature: float
                         ) -> float:
    """The per-layer kernel renormalisation u of Li & Sompolinsky (2021): the global minimum of H_eff over the
    roots of (N/2)(u − 1) + U g'(U) = 0, U = u^L (1 for L = 0: no hidden layer, nothing to renormalise)."""
    _check(n_hidden, sigma2, temperature, width)
    if n_hidden == 0:
        return 1.0
    if temperature == 0.0 and np.any(task.lam <= 0):
        raise ValueError("temperature 0 needs P <= N0 (an invertible Gram matrix)")
    L, c, T = n_hidden, nngp_kernel_scale(n_hidden, sigma2), float(temperature)

    def grad(s):  # (dH/ds)/L at u = e^s; s may be an array
        u = np.exp(s)
        _, ug = _g_terms(task, c * u**L, T)
        return 0.5 * width * (u - 1.0) + ug

    grid = np.linspace(-30.0 / L, 6.0, 721)
    vals = grad(grid)
    roots = [optimize.brentq(lambda x: float(grad(x)), a, b, xtol=1e-14) for a, b, fa, fb in
             zip(grid[:-1], grid[1:], vals[:-1], vals[1:]) if fa == 0 or fa * fb < 0]
    if not roots:
        raise ValueError("bpkr_renormalisation: no saddle point found in u ∈ [e^-30, e^6]")
    us = np.exp(roots)
    h = effective_hamiltonian(task, us, width=width, n_hidden=L, sigma2=sigma2, temperature=T)
    return float(us[int(np.argmin(h))])


def bpkr_renormalisation_zero_temperature(alpha: float, r: float, n_hidden: int) -> float:
    """T = 0 saddle point (P ≤ N₀): the positive root of u^{L+1} − (1 − α) u^L − α r = 0, α = P/N,
    r = yᵀ(cG)⁻¹y/P (Li & Sompolinsky 2021, the zero-temperature limit of the self-consistent equation)."""
    if not (math.isfinite(alpha) and alpha >= 0 and math.isfinite(r) and r > 0):
        raise ValueError(f"need alpha >= 0 and r > 0, got alpha={alpha!r}, r={r!r}")
    if n_hidden == 0:
        return 1.0
    L = int(n_hidden)
    return float(optimize.brentq(lambda u: u ** (L + 1) - (1 - alpha) * u**L - alpha * r, 1e-12,
                                 2.0 + abs(1 - alpha) + alpha * r, xtol=1e-15))


def bpkr_generalisation_error(task: LinearTask, *, width: float, n_hidden: int, sigma2: float, temperature: float
                              ) -> GeneralisationError:
    """ε_g of the BPKR saddle point: the GP with kernel c·u^L·x·x'/N₀ (Li & Sompolinsky 2021, Sec. IV)."""
    u = bpkr_renormalisation(task, width=width, n_hidden=n_hidden, sigma2=sigma2, temperature=temperature)
    b, v, _ = error_at_scale(task, u**n_hidden, c=nngp_kernel_scale(n_hidden, sigma2), temperature=temperature)
    return GeneralisationError(float(b + v), float(b), float(v), u)


def _log_gamma_density(s, k):
    """log density of s = log u for u ~ Gamma(shape k, rate k) (mean 1)."""
    return k * math.log(k) - special.gammaln(k) + k * s - k * np.exp(s)


def exact_generalisation_error(task: LinearTask, *, width: int, n_hidden: int, sigma2: float,
                               temperature: float, grid_points_per_sd: int = 40) -> GeneralisationError:
    """Exact finite-width ε_g: the GP scale mixture over S = Σ_l log u_l, u_l ~ Gamma(N/2, N/2) a priori,
    posterior ∝ prior(S)·exp(−g(e^S)) (see the module docstring), by quadrature on a uniform grid in S.

    The prior of S is the L-fold convolution of the log-Gamma density (numerical, on the grid of spacing sd/40);
    the grid covers the prior and the saddle point by ≥ 12 prior standard deviations, and the posterior mass in
    its outer 2% is checked to be < 1e-9.

    Returns:
        ``GeneralisationError`` with ``u`` = posterior mean of U^{1/L} and bias/variance of the full mixture.
    """
    _check(n_hidden, sigma2, temperature, width)
    if temperature <= 0:
        raise ValueError(f"exact_generalisation_error needs temperature > 0, got {temperature!r}")
    c, T, L = nngp_kernel_scale(n_hidden, sigma2), float(temperature), int(n_hidden)
    if L == 0:
        return gp_generalisation_error(task, n_hidden=0, sigma2=sigma2, temperature=T)
    k = 0.5 * width
    sd = math.sqrt(float(special.polygamma(1, k)))
    s_star = math.log(bpkr_renormalisation(task, width=width, n_hidden=L, sigma2=sigma2, temperature=T))
    # the log-Gamma density falls like e^{k s} to the left (so ≥ 30/k there) and like e^{−k e^s} to the right
    lo, hi = min(0.0, s_star) - max(14.0 * sd, 30.0 / k), max(0.0, s_star) + 12.0 * sd
    h = sd / grid_points_per_sd
    s = np.arange(lo, hi + h, h)
    one = np.exp(_log_gamma_density(s, k) - np.max(_log_gamma_density(s, k)))
    dens = one
    for _ in range(L - 1):
        dens = np.convolve(dens, one)
    S = L * lo + h * np.arange(dens.size)
    with np.errstate(divide="ignore"):
        log_w = np.log(dens) - _g_terms(task, c * np.exp(S), T)[0]
    w = np.exp(log_w - np.max(log_w))
    w /= w.sum()
    edge = max(1, w.size // 50)
    if w[:edge].sum() + w[-edge:].sum() > 1e-9:
        raise ValueError("exact_generalisation_error: posterior mass at the grid edge; widen the grid")
    bias_U, var_U, phi = error_at_scale(task, np.exp(S), c=c, temperature=T)
    total = float(np.sum(w * (bias_U + var_U)))
    phi_mean = np.sum(w[:, None] * phi, 0)
    bias = float((task.w_norm2 - 2.0 * phi_mean @ task.wB + phi_mean @ phi_mean) / task.n_in)
    return GeneralisationError(total, bias, total - bias, float(np.sum(w * np.exp(S / L))))


def gibbs_error_matched_prior(alpha0: float) -> float:
    """Zero-temperature Gibbs error of linear regression with a teacher drawn from the prior, isotropic inputs,
    P = α₀N₀ < N₀ examples, per unit teacher variance, as N₀ → ∞: ε_g = 2(1 − α₀) — the Gibbs error is twice the
    Bayes error 1 − α₀ (D. Haussler & M. Opper, "Mutual information, metric entropy and cumulative relative
    entropy risk", Ann. Stat. 25, 2451 (1997); Engel & Van den Broeck, *Statistical Mechanics of Learning*
    (2001), §3.3)."""
    if not (0.0 <= alpha0 <= 1.0):
        raise ValueError(f"alpha0 must be in [0, 1], got {alpha0!r}")
    return 2.0 * (1.0 - alpha0)
