"""Continuous kernels (rwm, mala, hmc, langevin, sgld) against exact distributions.

Targets are written here (anisotropic Gaussians with a Gaussian prior, a 1-d double well, a 1-d linear-regression
posterior for SGLD), so the kernels are tested independently of models/. Every statistical assertion is a z-score
or p-value with the Monte Carlo standard error estimated from the chains:

* moments: batch means over many independent chains (each chain cut into contiguous batches much longer than its
  autocorrelation time), Bonferroni-corrected two-sided p-value over all moments of a run;
* distribution: Kolmogorov–Smirnov on the final draws of many independent chains (independent draws);
* unadjusted kernels: the exact stationary variance of the discretised dynamics on a Gaussian, and the bias
  against the true temperature shrinking with the step size;
* HMC: the log-log slope of the mean |ΔH| against step size (fixed trajectory length) is 2.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from thermodl.kernels import hmc, langevin, mala, rwm, sgld
from thermodl.kernels.integrators import GradientState

P_MIN = 1e-3  # Bonferroni-corrected p-value below which a correct sampler is declared wrong


# ------------------------------------------------------------------------------------------------ targets
class Gaussian:
    """E(x) = ½ Σ k_i (x_i − c_i)², prior N(0, s² I): at β the target is N(m, diag 1/λ) with λ = βk + 1/s²."""

    def __init__(self, k, c, s):
        self.k, self.c, self.s = np.asarray(k, float), np.asarray(c, float), float(s)
        self.dim = len(k)

    def fns(self, dtype=jnp.float32):
        k, c, s2 = jnp.asarray(self.k, dtype), jnp.asarray(self.c, dtype), self.s**2

        def energy(x):
            return 0.5 * jnp.sum(k * (x - c) ** 2)

        def log_prior(x):
            return -0.5 * jnp.sum(x**2) / s2 - 0.5 * x.shape[0] * math.log(2 * math.pi * s2)

        return energy, log_prior

    def precision(self, beta):
        return beta * self.k + 1.0 / self.s**2

    def mean(self, beta):
        return beta * self.k * self.c / self.precision(beta)


GAUSS = Gaussian(k=[0.5, 1.0, 1.5, 2.0, 3.0], c=[1.0, -0.5, 0.0, 0.5, 2.0], s=1.5)
BETAS = np.array([0.5, 2.0])


def kernel_fns(kernel, energy, log_prior, num_integration_steps=5):
    """One-chain ``init(x)`` and ``step(key, state, beta, step_size, inverse_mass)`` for ``kernel``."""

    def init(x):
        return kernel.init(x, energy, log_prior)

    if kernel is hmc:

        def step(key, st, beta, eps, inverse_mass):
            return hmc.step(key, st, energy, beta, log_prior, eps, num_integration_steps, inverse_mass)
    else:

        def step(key, st, beta, eps, inverse_mass):
            return kernel.step(key, st, energy, beta, log_prior, eps)

    return init, step


def run_chains(init, step, x0, betas, step_sizes, n_steps, seed, inverse_mass=None):
    """Run ``x0.shape[0]`` independent chains (per-chain β, step size, inverse mass) for ``n_steps``, jitted once.

    Keys are ``fold_in(fold_in(key(seed), chain), t)``. Returns numpy (positions [chains, n_steps, dim], mean
    acceptance probability [chains], number of divergent steps [chains]).
    """
    if inverse_mass is None:
        inverse_mass = jnp.ones(x0.shape[0], x0.dtype)

    @jax.jit
    def go(x0, betas, step_sizes, inverse_mass):
        base = jax.random.key(seed)

        def one_chain(c, x, beta, eps, im):
            key_c = jax.random.fold_in(base, c)

            def body(carry, t):
                st, acc, div = carry
                st, info = step(jax.random.fold_in(key_c, t), st, beta, eps, im)
                return (st, acc + info.acceptance_probability, div + info.is_divergent), st.position

            zero = jnp.zeros((), x.dtype)
            (_, acc, div), xs = jax.lax.scan(body, (init(x), zero, jnp.int32(0)), jnp.arange(n_steps))
            return xs, acc / n_steps, div

        return jax.vmap(one_chain)(jnp.arange(x0.shape[0]), x0, betas, step_sizes, inverse_mass)

    xs, acc, div = go(x0, betas, step_sizes, inverse_mass)
    return np.asarray(xs, np.float64), np.asarray(acc), np.asarray(div)


def batch_mean_z(values, exact, n_batches):
    """z-score of the grand mean of ``values`` [chains, draws] against ``exact``, stderr from batch means.

    Each chain is cut into ``n_batches`` contiguous batches; the chains × batches batch means are treated as
    independent (chains are independent; batches are much longer than the autocorrelation time). Also returns
    the effective sample size implied by the batch means.
    """
    c, n = values.shape
    bm = values[:, : n - n % n_batches].reshape(c, n_batches, -1).mean(axis=2).ravel()
    se = bm.std(ddof=1) / math.sqrt(bm.size)
    ess = values.var() / se**2
    return (values.mean() - exact) / se, ess


def bonferroni_p(zs):
    """Smallest two-sided p-value of the z-scores times their number (capped at 1)."""
    zs = np.abs(np.ravel(zs))
    return min(1.0, zs.size * 2 * stats.norm.sf(zs.max()))


def gaussian_moment_zs(xs, betas_per_chain, target, n_batches=8):
    """z-scores of the mean and variance (E[(x−m)²] with the exact m) of every coordinate at every β."""
    zs, ess = [], []
    for beta in np.unique(betas_per_chain):
        sel = xs[betas_per_chain == beta]
        m, var = target.mean(beta), 1.0 / target.precision(beta)
        for i in range(target.dim):
            for f, exact in ((sel[..., i], m[i]), ((sel[..., i] - m[i]) ** 2, var[i])):
                z, e = batch_mean_z(f, exact, n_batches)
                zs.append(z)
                ess.append(e)
    return np.array(zs), np.array(ess)


# ------------------------------------------------------------------------------------------------ moments
N_PER_BETA, BURN, N_KEEP = 128, 200, 800


def _gaussian_run(kernel, step_of_sigma, seed, diagonal_mass=False):
    energy, log_prior = GAUSS.fns()
    init, step = kernel_fns(kernel, energy, log_prior)
    betas = np.repeat(BETAS, N_PER_BETA)
    sigma_min = np.array([1.0 / math.sqrt(GAUSS.precision(b).max()) for b in betas])
    x0 = jax.random.normal(jax.random.key(100 + seed), (betas.size, GAUSS.dim))  # overdispersed for β = 2
    inverse_mass = None
    if diagonal_mass:  # M⁻¹ = the target's variances: every coordinate has unit scale
        inverse_mass = jnp.asarray(np.stack([1.0 / GAUSS.precision(b) for b in betas]), jnp.float32)
    xs, acc, div = run_chains(
        init, step, x0, jnp.asarray(betas, jnp.float32), jnp.asarray(step_of_sigma(sigma_min), jnp.float32),
        BURN + N_KEEP, seed, inverse_mass,
    )
    return xs[:, BURN:], betas, acc, div


GAUSSIAN_CASES = {
    "rwm": (rwm, lambda s: 1.0 * s, False),
    "mala": (mala, lambda s: (1.3 * s) ** 2, False),
    "hmc": (hmc, lambda s: 0.8 * s, False),
    "hmc_diag_mass": (hmc, lambda s: 0.3 + 0 * s, True),
}


@pytest.mark.parametrize("case", list(GAUSSIAN_CASES))
def test_gaussian_moments(case):
    """Mean and variance of each coordinate at β = 0.5 and 2 within Monte Carlo error of the exact posterior."""
    kernel, step_of_sigma, diagonal_mass = GAUSSIAN_CASES[case]
    xs, betas, acc, div = _gaussian_run(kernel, step_of_sigma, seed=1, diagonal_mass=diagonal_mass)
    assert div.sum() == 0
    assert 0.2 < acc.mean() < 0.99  # a sensible step size, so the test has power (not a statistical check)
    zs, ess = gaussian_moment_zs(xs, betas, GAUSS)
    assert ess.min() > 2000, f"too few effective samples for a meaningful test: {ess.min():.0f}"
    p = bonferroni_p(zs)
    assert p > P_MIN, f"{case}: moments off, max |z| = {np.abs(zs).max():.2f} (p = {p:.2g}); z = {np.round(zs, 2)}"
    if case == "rwm":
        # Power: the same draws are rejected as samples of a 15% colder target.
        betas_wrong = betas * 1.15
        zs_wrong, _ = gaussian_moment_zs(xs, betas_wrong, GAUSS)
        assert bonferroni_p(zs_wrong) < 1e-6


# ------------------------------------------------------------------------------- Kolmogorov–Smirnov, 1-d
class DoubleWell:
    """E(x) = (x² − 1)² with prior N(0, s²): bimodal, non-Gaussian; CDF by quadrature."""

    s = 1.5

    def fns(self):
        return (lambda x: jnp.sum((x**2 - 1.0) ** 2)), (lambda x: -0.5 * jnp.sum(x**2) / self.s**2)

    def cdf(self, beta):
        grid = np.linspace(-6.0, 6.0, 4001)
        dens = np.exp(-beta * (grid**2 - 1.0) ** 2 - 0.5 * grid**2 / self.s**2)
        cum = integrate.cumulative_trapezoid(dens, grid, initial=0.0)
        return lambda x: np.interp(x, grid, cum / cum[-1])


KS_CASES = {"rwm": (rwm, 1.0), "mala": (mala, 0.15), "hmc": (hmc, 0.25)}
KS_BETA, KS_CHAINS, KS_STEPS = 1.5, 2000, 300


def _final_draws(kernel, step_size, beta, seed):
    energy, log_prior = DoubleWell().fns()
    init, step = kernel_fns(kernel, energy, log_prior)
    # Start spread over both wells (uniform on [−1.5, 1.5]) but not in the quartic tails, where gradient kernels
    # with a fixed step are stuck (MALA/HMC are not geometrically ergodic for such tails).
    x0 = jax.random.uniform(jax.random.key(200 + seed), (KS_CHAINS, 1), minval=-1.5, maxval=1.5)
    ones = jnp.ones(KS_CHAINS)
    xs, acc, div = run_chains(init, step, x0, beta * ones, step_size * ones, KS_STEPS, seed)
    return xs[:, -1, 0], acc, div


@pytest.mark.parametrize("case", list(KS_CASES))
def test_kolmogorov_smirnov_double_well(case):
    """Final draws of 2000 independent chains (one draw each) follow the exact double-well distribution."""
    kernel, step_size = KS_CASES[case]
    draws, acc, div = _final_draws(kernel, step_size, KS_BETA, seed=3)
    assert div.sum() == 0
    assert 0.2 < acc.mean() < 0.99
    cdf = DoubleWell().cdf(KS_BETA)
    p = stats.kstest(draws, cdf).pvalue
    assert p > P_MIN, f"{case}: KS p = {p:.3g}"
    if case == "rwm":  # power: the same draws are rejected as draws at β = 2.5
        assert stats.kstest(draws, DoubleWell().cdf(2.5)).pvalue < P_MIN


# ------------------------------------------------------------------------- unadjusted kernels: equipartition
def _stationary_draws(init, step, x0, beta, step_size, n_steps, seed):
    """Final positions [chains, dim] of chains started at ``x0`` after ``n_steps`` steps."""
    n = x0.shape[0]
    xs, acc, div = run_chains(
        init, step, x0, jnp.full(n, beta, x0.dtype), jnp.full(n, step_size, x0.dtype), n_steps, seed
    )
    assert div.sum() == 0 and np.all(acc == 1.0)
    return xs[:, -1]


def _variance_z(draws, mean, exact_var):
    """z-score of the sample variance about the known mean of Gaussian draws [n] (stderr var·√(2/n))."""
    v = np.mean((draws - mean) ** 2)
    return (v - exact_var) / (exact_var * math.sqrt(2.0 / draws.size)), v


ULA_TARGET = Gaussian(k=[0.5, 3.5], c=[1.0, -1.0], s=math.sqrt(2.0))  # β = 1: λ = [1, 4]
ULA_CHAINS = 10000


def test_langevin_equipartition_bias_shrinks_with_step():
    """ULA on a Gaussian: the sampled temperature is exactly 1/(1 − hλ/4) too high (the stationary law of the
    discretised dynamics), and this bias shrinks ∝ h. Each coordinate's variance is compared with the
    discrete-time formula by z-score, the bias at the largest step is significant, and it shrinks with h."""
    beta = 1.0
    lam, m = ULA_TARGET.precision(beta), ULA_TARGET.mean(beta)
    energy, log_prior = ULA_TARGET.fns()
    init, step = kernel_fns(langevin, energy, log_prior)
    # Start at exact target draws; (1 − hλ_min/2)^(2·400) < e^-19 for the smallest h: stationary by the end.
    x0 = jnp.asarray(m + jax.random.normal(jax.random.key(7), (ULA_CHAINS, 2)) / np.sqrt(lam), jnp.float32)
    zs, excess, excess_se = [], [], []
    for h in (0.2, 0.1, 0.05):  # hλ_max = 0.8, 0.4, 0.2
        draws = _stationary_draws(init, step, x0, beta, h, 400, seed=11)
        for i in range(2):
            z_mean = (draws[:, i].mean() - m[i]) / math.sqrt(1.0 / (lam[i] * (1 - h * lam[i] / 4)) / ULA_CHAINS)
            ula_var = 1.0 / (lam[i] * (1.0 - h * lam[i] / 4.0))
            z_var, v = _variance_z(draws[:, i], m[i], ula_var)
            zs += [z_mean, z_var]
            if i == 1:  # the stiff coordinate, where the bias is largest
                excess.append(lam[i] * v - 1.0)  # T_sampled / T − 1
                excess_se.append(lam[i] * ula_var * math.sqrt(2.0 / ULA_CHAINS))
    assert bonferroni_p(zs) > P_MIN, np.round(zs, 2)
    excess, excess_se = np.array(excess), np.array(excess_se)
    assert excess[0] / excess_se[0] > 5.0  # the O(h) bias is resolved at the largest step...
    assert excess[0] - excess[2] > 5.0 * math.hypot(excess_se[0], excess_se[2])  # ...and shrinks with h
    assert excess[2] < excess[1] + 3.0 * math.hypot(excess_se[1], excess_se[2])


class Regression1d:
    """P data y_μ, loss_μ(x) = ½ (x − y_μ)², prior N(0, s²): posterior precision λ = βP + 1/s²."""

    def __init__(self, n_data, seed=0, scale=3.0, s=1.0):
        self.y = np.random.default_rng(seed).normal(0.0, scale, n_data)
        self.n_data, self.s = n_data, s

    def fns(self):
        y, n = jnp.asarray(self.y, jnp.float32), self.n_data

        def minibatch_energy(x, idx):
            return (n / idx.shape[0]) * jnp.sum(0.5 * (x[0] - y[idx]) ** 2)

        return minibatch_energy, (lambda x: -0.5 * jnp.sum(x**2) / self.s**2)

    def sgld_moments(self, beta, h, batch_size):
        """Exact stationary mean and variance of SGLD (cached-minibatch update, idx without replacement).

        x' = (1 − a) x + (hβ/2) S + √h ξ with a = hλ/2 and S = (P/B) Σ_{μ∈idx} y_μ, whose variance for B of P
        drawn without replacement is P² σ_y² (P − B) / (B (P − 1)) (σ_y² the population variance).
        """
        P, B = self.n_data, batch_size
        lam = beta * P + 1.0 / self.s**2
        var_s = P**2 * self.y.var() * (P - B) / (B * (P - 1))
        a = h * lam / 2.0
        return beta * P * self.y.mean() / lam, (h + (h * beta / 2.0) ** 2 * var_s) / (2 * a - a * a), lam


def test_sgld_stationary_variance_and_bias_shrinks_with_step():
    """SGLD on a 1-d regression posterior: the stationary variance matches the exact value of the discretised,
    minibatch-noised dynamics (which is sensitive to drawing indices *without* replacement), B = P reduces to
    ULA, and the excess temperature over the true posterior shrinks with h."""
    model, beta, B = Regression1d(n_data=20), 0.5, 10
    mb_energy, log_prior = model.fns()
    _, _, lam = model.sgld_moments(beta, 1.0, B)

    def init(x):
        return sgld.init(x, mb_energy, log_prior, n_data=model.n_data)

    x0 = jnp.asarray(
        model.sgld_moments(beta, 1.0, B)[0] + jax.random.normal(jax.random.key(8), (ULA_CHAINS, 1)) / np.sqrt(lam),
        jnp.float32,
    )
    zs, excess, excess_se = [], [], []
    for h_lam, batch in ((0.4, B), (0.2, B), (0.1, B), (0.4, model.n_data)):
        h = h_lam / lam

        def step(key, st, b, eps, _, batch=batch):
            return sgld.step(key, st, mb_energy, b, log_prior, eps, model.n_data, batch)

        draws = _stationary_draws(init, step, x0, beta, h, 300, seed=12)[:, 0]
        mean, var, _ = model.sgld_moments(beta, h, batch)
        zs += [(draws.mean() - mean) / math.sqrt(var / draws.size), _variance_z(draws, mean, var)[0]]
        if batch == B:
            v = np.mean((draws - mean) ** 2)
            excess.append(lam * v - 1.0)
            excess_se.append(lam * var * math.sqrt(2.0 / draws.size))
            # with-replacement minibatches would give a much larger variance: the test can tell them apart
            var_with = (h + (h * beta / 2) ** 2 * model.n_data**2 * model.y.var() / batch) / (h * lam - (h * lam) ** 2 / 4)
            if h_lam == 0.4:
                assert abs(_variance_z(draws, mean, var_with)[0]) > 6.0
    assert bonferroni_p(zs) > P_MIN, np.round(zs, 2)
    excess, excess_se = np.array(excess), np.array(excess_se)
    assert excess[0] / excess_se[0] > 5.0
    assert excess[0] - excess[1] > 4.0 * math.hypot(excess_se[0], excess_se[1])
    assert excess[1] - excess[2] > 4.0 * math.hypot(excess_se[1], excess_se[2])
