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


def run_chains(init, step, x0, betas, step_sizes, n_steps, seed, inverse_mass=None, last_only=False):
    """Run ``x0.shape[0]`` independent chains (per-chain β, step size, inverse mass) for ``n_steps``, jitted once.

    Keys are ``fold_in(fold_in(key(seed), chain), t)``. Returns numpy (positions [chains, n_steps, dim] or the
    final ones [chains, dim] if ``last_only``, mean acceptance probability [chains], divergent steps [chains]).
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
                return (st, acc + info.acceptance_probability, div + info.is_divergent), (
                    None if last_only else st.position
                )

            zero = jnp.zeros((), x.dtype)
            (st, acc, div), xs = jax.lax.scan(body, (init(x), zero, jnp.int32(0)), jnp.arange(n_steps))
            return st.position if last_only else xs, acc / n_steps, div

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


def _gaussian_run(kernel, step_of_sigma, seed, diagonal_mass=False, num_integration_steps=5):
    energy, log_prior = GAUSS.fns()
    init, step = kernel_fns(kernel, energy, log_prior, num_integration_steps)
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


# (kernel, step size as a function of the smallest posterior std, M⁻¹ = posterior variances?, leapfrog steps).
# HMC trajectories rotate each coordinate by ≲ 1.6 rad: near π a fixed-length trajectory maps x -> −x and the
# variance stops mixing.
GAUSSIAN_CASES = {
    "rwm": (rwm, lambda s: 1.0 * s, False, 0),
    "mala": (mala, lambda s: (1.3 * s) ** 2, False, 0),
    "hmc": (hmc, lambda s: 0.8 * s, False, 2),
    "hmc_diag_mass": (hmc, lambda s: 0.3 + 0 * s, True, 5),
}


@pytest.mark.parametrize("case", list(GAUSSIAN_CASES))
def test_gaussian_moments(case):
    """Mean and variance of each coordinate at β = 0.5 and 2 within Monte Carlo error of the exact posterior."""
    kernel, step_of_sigma, diagonal_mass, n_leapfrog = GAUSSIAN_CASES[case]
    xs, betas, acc, div = _gaussian_run(kernel, step_of_sigma, 1, diagonal_mass, n_leapfrog)
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
    xs, acc, div = run_chains(init, step, x0, beta * ones, step_size * ones, KS_STEPS, seed, last_only=True)
    return xs[:, 0], acc, div


@pytest.mark.parametrize("case", list(KS_CASES))
def test_kolmogorov_smirnov_double_well(case):
    """Final draws of 2000 independent chains (one draw each) follow the exact double-well distribution."""
    kernel, step_size = KS_CASES[case]
    draws, acc, div = _final_draws(kernel, step_size, KS_BETA, seed=3)
    # HMC can meet a (rejected, flagged) divergence in the stiff quartic tails: rejections keep the law exact.
    assert div.sum() <= 1e-3 * div.size * KS_STEPS
    assert 0.2 < acc.mean() < 0.99
    cdf = DoubleWell().cdf(KS_BETA)
    p = stats.kstest(draws, cdf).pvalue
    assert p > P_MIN, f"{case}: KS p = {p:.3g}"
    if case == "rwm":  # power: the same draws are rejected as draws at β = 2.5
        assert stats.kstest(draws, DoubleWell().cdf(2.5)).pvalue < P_MIN


# ------------------------------------------------------------------------- unadjusted kernels: equipartition
def _variance_z(draws, mean, exact_var):
    """z-score of the sample variance about the known mean of Gaussian draws [n] (stderr var·√(2/n))."""
    v = np.mean((draws - mean) ** 2)
    return (v - exact_var) / (exact_var * math.sqrt(2.0 / draws.size)), v


def _final_positions(init, step, x0, beta, step_sizes, n_steps, seed):
    """One jitted run of len(step_sizes) × x0.shape[0] chains (a block of chains per step size, each block
    started at x0); returns the final positions [n_step_sizes, chains, dim]."""
    n, k = x0.shape[0], len(step_sizes)
    eps = jnp.asarray(np.repeat(step_sizes, n), x0.dtype)
    xs, acc, div = run_chains(
        init, step, jnp.tile(x0, (k, 1)), jnp.full(n * k, beta, x0.dtype), eps, n_steps, seed, last_only=True
    )
    assert div.sum() == 0 and np.all(acc == 1.0)
    return xs.reshape(k, n, -1)


ULA_TARGET = Gaussian(k=[0.5, 3.5], c=[1.0, -1.0], s=math.sqrt(2.0))  # β = 1: λ = [1, 4]
ULA_CHAINS = 4000


def test_langevin_equipartition_bias_shrinks_with_step():
    """ULA on a Gaussian: the sampled temperature is exactly 1/(1 − hλ/4) too high (the stationary law of the
    discretised dynamics), and this bias shrinks ∝ h. Each coordinate's mean and variance are compared with the
    discrete-time values by z-score, the bias at the largest step is significant, and it shrinks with h."""
    beta, steps = 1.0, np.array([0.2, 0.1, 0.05])  # hλ_max = 0.8, 0.4, 0.2
    lam, m = ULA_TARGET.precision(beta), ULA_TARGET.mean(beta)
    energy, log_prior = ULA_TARGET.fns()
    init, step = kernel_fns(langevin, energy, log_prior)
    # Start at exact target draws; (1 − hλ_min/2)^(2·300) < e^-15 for the smallest h: stationary by the end.
    x0 = jnp.asarray(m + jax.random.normal(jax.random.key(7), (ULA_CHAINS, 2)) / np.sqrt(lam), jnp.float32)
    final = _final_positions(init, step, x0, beta, steps, 300, seed=11)
    zs, excess, excess_se = [], [], []
    for h, draws in zip(steps, final):
        for i in range(2):
            ula_var = 1.0 / (lam[i] * (1.0 - h * lam[i] / 4.0))
            z_var, v = _variance_z(draws[:, i], m[i], ula_var)
            zs += [(draws[:, i].mean() - m[i]) / math.sqrt(ula_var / ULA_CHAINS), z_var]
            if i == 1:  # the stiff coordinate, where the bias is largest
                excess.append(lam[i] * v - 1.0)  # T_sampled / T − 1
                excess_se.append(lam[i] * ula_var * math.sqrt(2.0 / ULA_CHAINS))
    assert bonferroni_p(zs) > P_MIN, np.round(zs, 2)
    excess, excess_se = np.array(excess), np.array(excess_se)
    assert excess[0] / excess_se[0] > 5.0  # the O(h) bias is resolved at the largest step...
    assert excess[0] - excess[2] > 5.0 * math.hypot(excess_se[0], excess_se[2])  # ...and shrinks with h
    assert excess[1] < excess[0] and excess[2] < excess[1] + 3.0 * math.hypot(excess_se[1], excess_se[2])


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

    def sgld_moments(self, beta, h, batch_size, replace=False):
        """Exact stationary mean, variance of SGLD (cached-minibatch update) and the posterior precision λ.

        x' = (1 − a) x + (hβ/2) S + √h ξ with a = hλ/2 and S = (P/B) Σ_{μ∈idx} y_μ, whose variance for B of P
        drawn without replacement is P² σ_y² (P − B) / (B (P − 1)) (σ_y² the population variance; with
        replacement it would be P² σ_y² / B).
        """
        P, B = self.n_data, batch_size
        lam = beta * P + 1.0 / self.s**2
        var_s = P**2 * self.y.var() / B * (1.0 if replace else (P - B) / (P - 1))
        a = h * lam / 2.0
        return beta * P * self.y.mean() / lam, (h + (h * beta / 2.0) ** 2 * var_s) / (2 * a - a * a), lam


@pytest.mark.slow
def test_sgld_stationary_variance_and_bias_shrinks_with_step():
    """SGLD on a 1-d regression posterior: the stationary mean and variance match the exact values of the
    discretised, minibatch-noised dynamics (sensitive to drawing indices *without* replacement), B = P reduces to
    ULA, and the excess temperature over the true posterior shrinks with h."""
    model, beta, B = Regression1d(n_data=20), 0.5, 10
    mb_energy, log_prior = model.fns()
    mean0, _, lam = model.sgld_moments(beta, 1.0, B)
    steps = np.array([0.4, 0.2, 0.1]) / lam  # hλ

    def init(x):
        return sgld.init(x, mb_energy, log_prior, n_data=model.n_data)

    x0 = jnp.asarray(mean0 + jax.random.normal(jax.random.key(8), (ULA_CHAINS, 1)) / np.sqrt(lam), jnp.float32)
    zs, excess, excess_se = [], [], []
    for batch in (B, model.n_data):

        def step(key, st, b, eps, _, batch=batch):
            return sgld.step(key, st, mb_energy, b, log_prior, eps, model.n_data, batch)

        hs = steps if batch == B else steps[:1]
        final = _final_positions(init, step, x0, beta, hs, 150, seed=12)  # (1 − hλ/2)^300 < e^-15
        for h, draws in zip(hs, final[..., 0]):
            mean, var, _ = model.sgld_moments(beta, h, batch)
            z_var, v = _variance_z(draws, mean, var)
            zs += [(draws.mean() - mean) / math.sqrt(var / draws.size), z_var]
            if batch == B:
                excess.append(lam * v - 1.0)
                excess_se.append(lam * var * math.sqrt(2.0 / draws.size))
                if h == hs[0]:  # power: with-replacement minibatches would be told apart
                    var_with = model.sgld_moments(beta, h, batch, replace=True)[1]
                    assert abs(_variance_z(draws, mean, var_with)[0]) > 6.0
    assert bonferroni_p(zs) > P_MIN, np.round(zs, 2)
    excess, excess_se = np.array(excess), np.array(excess_se)
    assert excess[0] / excess_se[0] > 5.0  # the bias is resolved at the largest step...
    assert excess[0] - excess[2] > 5.0 * math.hypot(excess_se[0], excess_se[2])  # ...and shrinks with h
    assert excess[1] < excess[0] and excess[2] < excess[1] + 3.0 * math.hypot(excess_se[1], excess_se[2])


# ------------------------------------------------------------------------------------- HMC energy error
@pytest.mark.slow
def test_hmc_energy_error_scales_as_step_squared(x64):
    """Mean |ΔH| over chains for a trajectory of fixed length T = 1 is c·ε² + O(ε⁴): the log-log slope is 2.

    Same keys for every ε (same start and momentum), so the ε-dependence is deterministic per chain; the slope's
    standard error comes from the spread of the per-chain slopes. The O(ε²) relative correction to the
    leading term sets the range of ε (ε √λ_max ≤ 0.2 rad). float64, so that rounding (~1e-7 of H in float32)
    does not swamp the smallest ΔH.
    """
    energy, log_prior = GAUSS.fns(jnp.float64)
    beta = 2.0
    lam, m = GAUSS.precision(beta), GAUSS.mean(beta)
    n_chains = 256
    x0 = jnp.asarray(m + np.random.default_rng(3).normal(size=(n_chains, GAUSS.dim)) / np.sqrt(lam), jnp.float64)
    keys = jax.random.split(jax.random.key(5), n_chains)
    eps_list = np.array([0.025, 0.05, 0.1, 0.2]) / math.sqrt(lam.max())
    trajectory = 1.0
    dh = []
    for eps in eps_list:
        n = int(round(trajectory / eps))

        @jax.jit
        def one(key, x, eps=eps, n=n):
            st = hmc.init(x, energy, log_prior)
            return hmc.step(key, st, energy, beta, log_prior, eps, n)[1].energy_error

        dh.append(np.abs(np.asarray(jax.vmap(one)(keys, x0), np.float64)))
    dh = np.array(dh)  # [n_eps, chains]
    assert np.all(np.isfinite(dh)) and np.all(dh > 0)
    per_chain = np.polyfit(np.log(eps_list), np.log(dh), 1)[0]  # [chains] log-log slopes
    z = (per_chain.mean() - 2.0) / (per_chain.std(ddof=1) / math.sqrt(n_chains))
    assert abs(z) < 4.0, f"slope {per_chain.mean():.3f} ± {per_chain.std(ddof=1) / math.sqrt(n_chains):.3f}"


# --------------------------------------------------------------------------- accept/reject, injected proposals
X0 = jnp.array([0.3, -0.2, 0.5], jnp.float32)
ADJUSTED = {
    "rwm": lambda key, st, e, b, lp: rwm.step(key, st, e, b, lp, 0.5),
    "mala": lambda key, st, e, b, lp: mala.step(key, st, e, b, lp, 0.1),
    "hmc": lambda key, st, e, b, lp: hmc.step(key, st, e, b, lp, 0.1, 3),
}
MODULES = {"rwm": rwm, "mala": mala, "hmc": hmc}


def _injected(value_elsewhere, value_at_start=0.0):
    """An energy equal to ``value_at_start`` at X0 exactly and ``value_elsewhere`` at every proposal (zero
    gradient everywhere, so gradient kernels propose exactly like a random walk and K is unchanged)."""
    return lambda x: jnp.where(jnp.all(x == X0), value_at_start, value_elsewhere).astype(x.dtype)


@pytest.mark.parametrize("name", list(ADJUSTED))
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_nonfinite_proposal_is_rejected_and_flagged(name, bad):
    energy = _injected(bad)
    st = MODULES[name].init(X0, energy, None)
    keys = jax.random.split(jax.random.key(0), 64)
    new, info = jax.vmap(lambda k: ADJUSTED[name](k, st, energy, 1.0, None))(keys)
    assert not np.any(info.is_accepted) and np.all(info.is_divergent)
    assert np.all(info.acceptance_probability == 0.0)
    assert np.array_equal(new.position, np.broadcast_to(X0, new.position.shape))
    assert np.all(new.energy == 0.0)


@pytest.mark.parametrize("name", list(ADJUSTED))
def test_acceptance_probability_of_injected_energy_step(name):
    """Proposal energy 1 above the start (flat prior, zero gradients): acceptance probability is exactly
    exp(−β) and the accepted fraction over 4000 keys is binomial around it."""
    energy, beta = _injected(1.0), 0.7
    st = MODULES[name].init(X0, energy, None)
    keys = jax.random.split(jax.random.key(1), 4000)
    new, info = jax.jit(jax.vmap(lambda k: ADJUSTED[name](k, st, energy, beta, None)))(keys)
    p = math.exp(-beta)
    np.testing.assert_allclose(np.asarray(info.acceptance_probability), p, rtol=1e-6)
    assert not np.any(info.is_divergent)
    frac = float(np.mean(info.is_accepted))
    assert abs(frac - p) < 4.0 * math.sqrt(p * (1 - p) / keys.shape[0])
    moved = np.any(np.asarray(new.position) != np.asarray(X0), axis=1)
    assert np.array_equal(moved, np.asarray(info.is_accepted))
    assert np.all(np.where(info.is_accepted, new.energy == 1.0, new.energy == 0.0))


@pytest.mark.parametrize("name", list(ADJUSTED))
def test_prior_support_and_infinite_start(name):
    """log prior −inf at the proposal: an ordinary rejection (not divergent). Infinite energy at the start and
    finite at the proposal: always accepted, at β > 0 and (0·∞ = 0) at β = 0."""
    log_prior = lambda x: jnp.where(jnp.all(x == X0), 0.0, -jnp.inf).astype(x.dtype)  # noqa: E731
    energy = _injected(0.0)
    st = MODULES[name].init(X0, energy, log_prior)
    keys = jax.random.split(jax.random.key(2), 64)
    _, info = jax.vmap(lambda k: ADJUSTED[name](k, st, energy, 1.0, log_prior))(keys)
    assert not np.any(info.is_accepted) and not np.any(info.is_divergent)

    if name == "mala":  # outside the support the log prior's gradient may be NaN (∞·0): still not divergent
        log_prior = lambda x: jnp.log(jnp.where(jnp.all(x == X0), 1.0, 0.0) * (1.0 + x[0] ** 2))  # noqa: E731
        st = mala.init(X0, energy, log_prior)
        _, info = jax.vmap(lambda k: ADJUSTED[name](k, st, energy, 1.0, log_prior))(keys)
        assert not np.any(info.is_accepted) and not np.any(info.is_divergent)

    energy = _injected(2.0, value_at_start=np.inf)
    st = MODULES[name].init(X0, energy, None)
    for beta in (1.0, 0.0):
        new, info = jax.vmap(lambda k, b=beta: ADJUSTED[name](k, st, energy, b, None))(keys)
        assert np.all(info.is_accepted) and not np.any(info.is_divergent)
        assert np.all(new.energy == 2.0)


def test_langevin_and_sgld_do_not_take_divergent_moves():
    for bad in (np.inf, np.nan):
        energy = _injected(bad)
        st = langevin.init(X0, energy, None)
        new, info = langevin.step(jax.random.key(3), st, energy, 1.0, None, 0.01)
        assert not info.is_accepted and info.is_divergent and info.acceptance_probability == 0.0
        assert np.array_equal(new.position, X0)

        def mb(x, idx, bad=bad):
            return jnp.where(jnp.all(x == X0), 0.0, bad).astype(x.dtype) + 0.0 * idx.sum()

        st = sgld.init(X0, mb, None, n_data=10)
        new, info = sgld.step(jax.random.key(3), st, mb, 1.0, None, 0.01, 10, 4)
        assert not info.is_accepted and info.is_divergent
        assert np.array_equal(new.position, X0)
    st = langevin.init(X0, _injected(1.0), None)
    _, info = langevin.step(jax.random.key(3), st, _injected(1.0), 1.0, None, 0.01)
    assert info.is_accepted and not info.is_divergent and info.acceptance_probability == 1.0
    # no accept/reject: a move outside the prior's support is not taken either
    log_prior = lambda x: jnp.where(jnp.all(x == X0), 0.0, -jnp.inf).astype(x.dtype)  # noqa: E731
    st = langevin.init(X0, _injected(1.0), log_prior)
    new, info = langevin.step(jax.random.key(3), st, _injected(1.0), 1.0, log_prior, 0.01)
    assert not info.is_accepted and info.is_divergent and np.array_equal(new.position, X0)


def test_hmc_large_energy_error_is_flagged_divergent():
    """A step size far beyond stability gives ΔH > 1000: flagged divergent (and rejected)."""
    energy, log_prior = GAUSS.fns()
    st = hmc.init(jnp.ones(GAUSS.dim), energy, log_prior)
    _, info = hmc.step(jax.random.key(4), st, energy, 2.0, log_prior, 1.0, 3)  # ε √λ_max ≈ 2.5 > 2: unstable
    assert np.isfinite(info.energy_error) and info.energy_error > 1000.0
    assert info.is_divergent and not info.is_accepted
    assert info.num_integration_steps == 3
    _, info = hmc.step(jax.random.key(4), st, energy, 2.0, log_prior, 1.0, 3, divergence_threshold=1e5)
    assert not info.is_divergent


def test_draw_minibatch_is_a_uniform_subset():
    """χ² of the C(P, B) subsets against uniform, for the Floyd path (B² ≤ 8P) and the top-k path."""
    from itertools import combinations

    from thermodl.kernels.sgld import _draw_minibatch

    for n_data, batch in ((6, 2), (6, 3), (7, 5)):  # Floyd, Floyd, top-k
        keys = jax.random.split(jax.random.key(9), 20000)
        idx = np.sort(np.asarray(jax.vmap(lambda k: _draw_minibatch(k, n_data, batch))(keys)), axis=1)
        assert np.all(np.diff(idx, axis=1) > 0) and idx.min() >= 0 and idx.max() < n_data
        subsets = {c: i for i, c in enumerate(combinations(range(n_data), batch))}
        counts = np.bincount([subsets[tuple(r)] for r in idx], minlength=len(subsets))
        assert stats.chisquare(counts).pvalue > P_MIN
    assert np.array_equal(_draw_minibatch(jax.random.key(0), 5, 5), np.arange(5))


# ------------------------------------------------------------------------ jit / vmap / dtype / determinism
def _all_steps(dtype):
    energy, log_prior = GAUSS.fns(dtype)
    reg = Regression1d(n_data=12)
    y = jnp.asarray(reg.y, dtype)

    def mb(x, idx):  # 5-d version of the regression energy
        return (12 / idx.shape[0]) * jnp.sum(0.5 * (x[:, None] - y[idx][None, :]) ** 2) / GAUSS.dim

    return {
        "rwm": (lambda x: rwm.init(x, energy, log_prior), lambda k, s, b: rwm.step(k, s, energy, b, log_prior, 0.3)),
        "mala": (lambda x: mala.init(x, energy, log_prior),
                 lambda k, s, b: mala.step(k, s, energy, b, log_prior, 0.05)),
        "hmc": (lambda x: hmc.init(x, energy, log_prior),
                lambda k, s, b: hmc.step(k, s, energy, b, log_prior, 0.1, 4, jnp.linspace(0.5, 1.5, 5, dtype=dtype))),
        "langevin": (lambda x: langevin.init(x, energy, log_prior),
                     lambda k, s, b: langevin.step(k, s, energy, b, log_prior, 0.01)),
        "sgld": (lambda x: sgld.init(x, mb, log_prior, n_data=12),
                 lambda k, s, b: sgld.step(k, s, mb, b, log_prior, 0.01, 12, 3)),
    }


def test_jit_vmap_dtype_determinism(dtype):
    """Every kernel, two steps from init: vmapped (3 chains) and, in float32, jitted and un-jitted agree; dtypes
    and shapes are preserved; the same key gives bitwise the same output. All kernels share one program."""
    kernels = _all_steps(dtype)
    n = 3
    x = jnp.asarray(np.random.default_rng(0).normal(size=(n, GAUSS.dim)), dtype)
    keys = jax.random.split(jax.random.key(42), n)
    beta = jnp.asarray(1.3, dtype)

    def two_steps(name, k, x):
        init, step = kernels[name]
        s = init(x)
        k1, k2 = jax.random.split(k)
        s, _ = step(k1, s, beta)
        return step(k2, s, beta)

    def all_kernels(k, x):
        return {name: two_steps(name, k, x) for name in kernels}

    vmapped_fn = jax.jit(jax.vmap(all_kernels))
    vmapped = vmapped_fn(keys, x)
    rtol = 1e-5 if dtype == jnp.float32 else 1e-12

    def close(a, b):
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(np.asarray(u, float), np.asarray(v, float), rtol=rtol, atol=rtol)

    # same key -> bitwise the same output
    for a, b in zip(jax.tree.leaves(vmapped_fn(keys, x)), jax.tree.leaves(vmapped)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    if dtype == jnp.float32:  # compile time is the cost of this test: jit alone in one dtype
        jitted = jax.jit(all_kernels)
        for i in range(n):
            close(jax.tree.map(lambda a: a[i], vmapped), jitted(keys[i], x[i]))
    one = jax.tree.map(lambda a: a[0], vmapped)
    for name, (st, info) in one.items():
        for leaf in jax.tree.leaves(st):
            assert leaf.dtype == dtype, name
        for leaf in jax.tree.leaves(vmapped[name][0]):
            assert leaf.dtype == dtype and leaf.shape[0] == n, name
        assert info.is_accepted.dtype == jnp.bool_ and info.is_divergent.dtype == jnp.bool_
        assert st.position.shape == (GAUSS.dim,) and st.energy.shape == ()
        # a different key gives a different first move
        assert not np.array_equal(st.position, jax.tree.map(lambda a: a[1], vmapped[name][0]).position)
    if dtype == jnp.float32:  # un-jitted runs op by op (one small compile per op): checked in one dtype only
        for name in kernels:
            eager = two_steps(name, keys[0], x[0])
            close(eager, one[name])
            for a, b in zip(jax.tree.leaves(two_steps(name, keys[0], x[0])), jax.tree.leaves(eager)):
                assert np.array_equal(np.asarray(a), np.asarray(b))
        # a legacy uint32 key works too
        init, step = kernels["rwm"]
        assert step(jax.random.PRNGKey(0), init(x[0]), beta)[0].position.dtype == dtype


def test_python_scalars_and_scan_carry_types(x64):
    """float64 chains with Python-float β / step size (and a weakly typed energy) keep their dtypes in a scan."""
    energy = lambda x: 0.5 * jnp.sum(x**2) * 1.0  # noqa: E731
    x = jnp.ones(3, jnp.float64)
    for mod, kw in ((rwm, {}), (mala, {}), (langevin, {}), (hmc, {"num_integration_steps": 2})):
        st = mod.init(x, energy, None)

        def body(s, k, mod=mod, kw=kw):
            extra = (kw["num_integration_steps"],) if kw else ()
            return mod.step(k, s, energy, 0.5, None, 0.1, *extra)[0], None

        out, _ = jax.lax.scan(body, st, jax.random.split(jax.random.key(0), 3))
        assert all(a.dtype == b.dtype for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(st)))
    st32 = rwm.init(jnp.ones(3, jnp.float32), energy, None)
    assert rwm.step(jax.random.key(0), st32, energy, jnp.float64(1.0), None, jnp.float64(0.1))[0].position.dtype \
        == jnp.float32


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_input_raises_value_error():
    energy, log_prior = GAUSS.fns()
    x = jnp.zeros(GAUSS.dim)
    st = hmc.init(x, energy, log_prior)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="step_size"):
        rwm.step(key, rwm.init(x, energy, log_prior), energy, 1.0, log_prior, -0.1)
    with pytest.raises(ValueError, match="step_size"):
        mala.step(key, st, energy, 1.0, log_prior, 0.0)
    with pytest.raises(ValueError, match="step_size"):
        langevin.step(key, st, energy, 1.0, log_prior, jnp.ones(2))
    with pytest.raises(ValueError, match="num_integration_steps"):
        hmc.step(key, st, energy, 1.0, log_prior, 0.1, 0)
    with pytest.raises(ValueError, match="num_integration_steps"):
        hmc.step(key, st, energy, 1.0, log_prior, 0.1, 2.0)
    with pytest.raises(ValueError, match="inverse_mass"):
        hmc.step(key, st, energy, 1.0, log_prior, 0.1, 2, jnp.ones(3))
    with pytest.raises(ValueError, match="inverse_mass"):
        hmc.step(key, st, energy, 1.0, log_prior, 0.1, 2, -1.0)
    with pytest.raises(ValueError, match="position"):
        rwm.init(jnp.zeros((2, 3)), energy, log_prior)
    with pytest.raises(ValueError, match="position"):
        mala.init(jnp.zeros(3, jnp.int32), energy, log_prior)
    with pytest.raises(ValueError, match="log_prior_fn"):
        rwm.init(x, energy, 3.0)
    mb = lambda x, idx: jnp.sum(x) * idx.shape[0]  # noqa: E731
    with pytest.raises(ValueError, match="n_data"):
        sgld.init(x, mb, None)
    s = sgld.init(x, mb, None, n_data=10)
    with pytest.raises(ValueError, match="batch_size"):
        sgld.step(key, s, mb, 1.0, None, 0.01, 10, 11)
    with pytest.raises(ValueError, match="n_data"):
        sgld.step(key, s, mb, 1.0, None, 0.01, 0, 1)
    # traced step sizes cannot be checked and must not raise
    jax.jit(lambda e: rwm.step(key, rwm.init(x, energy, log_prior), energy, 1.0, log_prior, e))(0.1)
