"""Geodesic random-walk Metropolis on |x|² = dim against exact distributions on the sphere.

* von Mises–Fisher on S² (dim 3): with x̂ = x/√3 and density ∝ exp(κ m·x̂), t = m·x̂ has density ∝ e^{κt} on
  [−1, 1] (Archimedes), so E[x̂] = L(κ) m with L(κ) = coth κ − 1/κ, E[t²] = L′(κ) + L(κ)², and
  F(t) = (e^{κt} − e^{−κ}) / (e^{κ} − e^{−κ}). Moments by batch-means z-scores, final draws by Kolmogorov–Smirnov.
* A non-differentiable error-count energy E = #{μ : ξ_μ·x < 0} for two patterns at angle φ in dim 4: the
  number of errors is 0, 1, 2 with prior probabilities (π − φ)/2π, φ/π, (π − φ)/2π (only the 2-d projection
  matters), weighted by e^{−βE}; compared by χ².
* The circle (dim 2) with a flat energy: the angle is uniform (KS).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from thermodl.kernels import sphere

P_MIN = 1e-3


def run(energy, log_prior, x0, betas, step_size, n_steps, seed, last_only=False):
    """Chains [C] from x0 [C, dim] at per-chain β, jitted once; (positions [C, n_steps, dim] or [C, dim],
    mean acceptance [C], divergences [C])."""

    @jax.jit
    def go(x0, betas):
        def one(c, x, beta):
            key_c = jax.random.fold_in(jax.random.key(seed), c)

            def body(carry, t):
                st, acc, div = carry
                st, info = sphere.step(jax.random.fold_in(key_c, t), st, energy, beta, log_prior, step_size)
                return (st, acc + info.acceptance_probability, div + info.is_divergent), (
                    None if last_only else st.position
                )

            init = (sphere.init(x, energy, log_prior), jnp.zeros((), x.dtype), jnp.int32(0))
            (st, acc, div), xs = jax.lax.scan(body, init, jnp.arange(n_steps))
            return st.position if last_only else xs, acc / n_steps, div

        return jax.vmap(one)(jnp.arange(x0.shape[0]), x0, betas)

    xs, acc, div = go(x0, betas)
    return np.asarray(xs, np.float64), np.asarray(acc), np.asarray(div)


def batch_mean_z(values, exact, n_batches=8):
    """z of the grand mean of values [chains, draws] vs exact; stderr from chains × n_batches batch means."""
    c, n = values.shape
    bm = values[:, : n - n % n_batches].reshape(c, n_batches, -1).mean(axis=2).ravel()
    return (values.mean() - exact) / (bm.std(ddof=1) / math.sqrt(bm.size))


def bonferroni_p(zs):
    zs = np.abs(np.ravel(zs))
    return min(1.0, zs.size * 2 * stats.norm.sf(zs.max()))


def langevin_fn(kappa):
    return 1.0 / np.tanh(kappa) - 1.0 / kappa


M_DIR = np.array([1.0, 2.0, 2.0]) / 3.0
KAPPA0 = 2.0


def _vmf_fns(via_prior):
    m = jnp.asarray(M_DIR, jnp.float32)
    tilt = lambda x: KAPPA0 * jnp.dot(m, x) / jnp.sqrt(3.0)  # noqa: E731  κ0 m·x̂
    if via_prior:  # β = 0 target: the prior alone (w.r.t. the uniform measure), energy a distractor
        return (lambda x: jnp.sum(jnp.abs(x))), tilt
    return (lambda x: -tilt(x)), None


def _uniform_start(key, n, dim):
    return sphere.project(jax.random.normal(key, (n, dim)))


@pytest.mark.parametrize("via_prior", [False, True])
def test_von_mises_fisher_moments(via_prior):
    """E[x̂_i] = L(κ) m_i and E[t²] at κ = 1 and 6 (β = 0.5, 3), or κ = 2 through the log prior at β = 0."""
    energy, log_prior = _vmf_fns(via_prior)
    betas = np.array([0.0]) if via_prior else np.array([0.5, 3.0])
    kappas = np.array([KAPPA0]) if via_prior else betas * KAPPA0
    per, burn, keep = 128, 200, 800
    beta_chain = np.repeat(betas, per)
    x0 = _uniform_start(jax.random.key(1), beta_chain.size, 3)
    xs, acc, div = run(energy, log_prior, x0, jnp.asarray(beta_chain, jnp.float32), 0.8, burn + keep, seed=2)
    assert div.sum() == 0 and 0.2 < acc.mean() < 0.95
    xs = xs[:, burn:] / math.sqrt(3.0)
    zs = []
    for beta, kappa in zip(betas, kappas):
        sel = xs[beta_chain == beta]
        L = langevin_fn(kappa)
        for i in range(3):
            zs.append(batch_mean_z(sel[..., i], L * M_DIR[i]))
        t = sel @ M_DIR
        zs.append(batch_mean_z(t**2, 1.0 / kappa**2 - 1.0 / np.sinh(kappa) ** 2 + L**2))
    assert bonferroni_p(zs) > P_MIN, np.round(zs, 2)
    # power: the draws are rejected as draws at a 15% larger κ
    kappa = kappas[-1] * 1.15
    sel = xs[beta_chain == betas[-1]]
    assert abs(batch_mean_z(sel @ M_DIR, langevin_fn(kappa))) > 5.0


def test_von_mises_fisher_kolmogorov_smirnov():
    kappa_beta = 3.0
    energy, _ = _vmf_fns(False)
    n = 2000
    x0 = _uniform_start(jax.random.key(3), n, 3)
    xs, _, div = run(energy, None, x0, jnp.full(n, kappa_beta / KAPPA0), 0.8, 300, seed=4, last_only=True)
    assert div.sum() == 0
    t = xs @ M_DIR / math.sqrt(3.0)
    k = kappa_beta
    cdf = lambda s: (np.exp(k * s) - np.exp(-k)) / (np.exp(k) - np.exp(-k))  # noqa: E731
    assert stats.kstest(t, cdf).pvalue > P_MIN
    assert stats.kstest(t, lambda s: (np.exp(1.3 * k * s) - np.exp(-1.3 * k)) / (2 * np.sinh(1.3 * k))).pvalue < P_MIN


def test_error_count_energy_chi_square():
    """Non-differentiable energy (number of misclassified patterns): distribution of the error count by χ²."""
    dim, phi, beta = 4, math.pi / 3, 1.2
    xi = jnp.array([[1.0, 0.0, 0.0, 0.0], [math.cos(phi), math.sin(phi), 0.0, 0.0]], jnp.float32)

    def energy(x):
        return jnp.sum((xi @ x < 0).astype(x.dtype))

    n = 3000
    x0 = _uniform_start(jax.random.key(5), n, dim)
    xs, _, div = run(energy, None, x0, jnp.full(n, beta), 0.7, 300, seed=6, last_only=True)
    assert div.sum() == 0
    errors = np.asarray(jax.vmap(energy)(jnp.asarray(xs, jnp.float32))).astype(int)
    prior = np.array([(math.pi - phi) / (2 * math.pi), phi / math.pi, (math.pi - phi) / (2 * math.pi)])
    p = prior * np.exp(-beta * np.arange(3))
    p /= p.sum()
    counts = np.bincount(errors, minlength=3)
    assert stats.chisquare(counts, n * p).pvalue > P_MIN, counts
    q = prior * np.exp(-1.3 * beta * np.arange(3))  # power: a 30% colder target is rejected
    assert stats.chisquare(counts, n * q / q.sum()).pvalue < P_MIN


def test_circle_is_uniform():
    """dim 2 (a circle, where a fixed rotation angle would not be ergodic): the angle is uniform."""
    n = 2000
    energy = lambda x: jnp.zeros((), x.dtype)  # noqa: E731
    x0 = jnp.tile(jnp.array([[math.sqrt(2.0), 0.0]]), (n, 1))  # all chains start at one point
    xs, acc, _ = run(energy, None, x0, jnp.ones(n), 1.0, 60, seed=7, last_only=True)
    assert np.all(acc == 1.0)
    angle = np.arctan2(xs[:, 1], xs[:, 0])
    assert stats.kstest(angle, stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > P_MIN


def test_stays_on_sphere_in_float32():
    """Many steps in float32 at dim 50: |x|² = dim to a few ulps (renormalised every step, no drift)."""
    dim, n_steps = 50, 2000
    energy = lambda x: 0.1 * jnp.sum(x[:5] ** 3)  # noqa: E731
    x0 = 3.0 * jax.random.normal(jax.random.key(8), (4, dim))  # off the sphere: init projects
    xs, acc, _ = run(energy, None, x0, jnp.ones(4), 0.2, n_steps, seed=9, last_only=True)
    assert acc.mean() > 0.2  # it moved
    norm2 = np.sum(np.asarray(xs, np.float64) ** 2, axis=1)
    assert np.max(np.abs(norm2 / dim - 1.0)) < 20 * np.finfo(np.float32).eps


def test_injected_proposals_and_bad_input(dtype):
    # init projects (which may move a point already on the sphere by an ulp, differently under jit), so the
    # injected energy is keyed to the state's own position x0, built directly.
    x0 = sphere.init(jnp.array([0.3, -1.0, 0.5], dtype), lambda x: jnp.zeros((), x.dtype)).position
    keys = jax.random.split(jax.random.key(0), 2000)
    beta = 0.7

    @jax.jit
    def inject(keys, value):  # energy 0 at x0 and ``value`` at every proposal; one compile for all values
        energy = lambda x: jnp.where(jnp.all(x == x0), 0.0, value).astype(x.dtype)  # noqa: E731
        st = sphere.State(x0, energy(x0), jnp.zeros((), dtype))
        return jax.vmap(lambda k: sphere.step(k, st, energy, beta, None, 0.3))(keys)

    for bad in (np.inf, np.nan, -np.inf):
        new, info = inject(keys[:32], bad)
        assert not np.any(info.is_accepted) and np.all(info.is_divergent)
        assert np.array_equal(new.position, np.broadcast_to(x0, new.position.shape))
    new, info = inject(keys, 1.0)
    p = math.exp(-beta)
    np.testing.assert_allclose(np.asarray(info.acceptance_probability), p, rtol=1e-6)
    assert abs(np.mean(info.is_accepted) - p) < 4 * math.sqrt(p * (1 - p) / keys.shape[0])
    assert new.position.dtype == dtype and new.energy.dtype == dtype
    # same key, same output; eager equals jitted
    again, _ = inject(keys, 1.0)
    assert np.array_equal(np.asarray(again.position), np.asarray(new.position))
    energy = lambda x: jnp.where(jnp.all(x == x0), 0.0, 1.0).astype(x.dtype)  # noqa: E731
    st = sphere.State(x0, energy(x0), jnp.zeros((), dtype))
    eager, _ = sphere.step(keys[0], st, energy, beta, None, 0.3)
    np.testing.assert_allclose(eager.position, new.position[0], rtol=1e-5 if dtype == jnp.float32 else 1e-12)
    with pytest.raises(ValueError, match="dim"):
        sphere.init(jnp.ones(1, dtype), energy)
    with pytest.raises(ValueError, match="step_size"):
        sphere.step(keys[0], st, energy, 1.0, None, -0.1)
    with pytest.raises(ValueError, match="position"):
        sphere.init(jnp.ones((2, 3), dtype), energy)


def test_huge_step_size_stays_finite_and_infinite_step_is_rejected():
    """Regression: adaptation on a flat/piecewise-constant energy can push the step size to +inf. Huge finite
    steps must stay proper random rotations on the sphere (not collapse to the antipode −x), and an infinite
    step must be rejected and flagged divergent, never leave a NaN position that an error-count energy would
    score as 0 errors."""
    import jax
    import jax.numpy as jnp

    from thermodl.kernels import sphere

    def errors(x):  # piecewise constant
        return jnp.sum(x[:2] <= 0.3).astype(x.dtype)

    x0 = jnp.ones(6)
    state = sphere.init(x0, errors)
    for s in (1e3, 1e30):
        news = [sphere.step(jax.random.key(k), state, errors, 0.0, None, s) for k in range(8)]
        for new, info in news:
            assert bool(jnp.all(jnp.isfinite(new.position))) and not bool(info.is_divergent)
            assert float(jnp.sum(new.position**2)) == pytest.approx(6.0, rel=1e-5)
        # not all antipodal: the proposals spread over the sphere
        cosines = [float(jnp.dot(new.position, x0)) / 6.0 for new, _ in news]
        assert max(cosines) - min(cosines) > 0.2, cosines
    new, info = sphere.step(jax.random.key(0), state, errors, 0.0, None, float("inf"))
    assert bool(info.is_divergent) and not bool(info.is_accepted)
    assert bool(jnp.all(new.position == state.position))
