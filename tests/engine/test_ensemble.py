"""engine.observables, engine.diagnostics and engine.ensemble.run_ensemble."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thermodl.engine import diagnostics as dg
from thermodl.engine import ensemble, equilibrium
from thermodl.engine import observables as ob
from thermodl.engine.ensemble import run_ensemble
from thermodl.models.base import enumerate_states, stack_models

from toys import Gauss, TinyIsing


def exact_ising(model, betas):
    """Exact U, C = β² Var(E) and ⟨m²⟩ by enumeration (float64)."""
    s = np.asarray(enumerate_states(model.dim), np.float64)
    e = np.asarray(jax.vmap(model.energy)(jnp.asarray(s, jnp.float32)), np.float64)
    m2 = s.mean(1) ** 2
    out = []
    for b in np.atleast_1d(betas):
        lw = -b * e
        p = np.exp(lw - np.logaddexp.reduce(lw))
        u = (p * e).sum()
        out.append((u, b**2 * ((p * e * e).sum() - u * u), (p * m2).sum()))
    return np.array(out).T


# ------------------------------------------------------------------------------------------------ observables
def test_streaming_moments_match_numpy():
    x = np.random.default_rng(0).normal(size=(101, 3)).astype(np.float32) * 3 + 1

    def body(c, xt_t):
        xt, t = xt_t
        m, s, lme = c
        return (ob.moments_update(m, xt), ob.split_moments_update(s, xt, t, 101), ob.log_mean_exp_update(lme, xt)), None

    init = (ob.moments_init((3,)), ob.split_moments_init((3,)), ob.log_mean_exp_init((3,)))
    (m, s, lme), _ = jax.lax.scan(body, init, (jnp.asarray(x), jnp.arange(101)))
    np.testing.assert_allclose(m.mean, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(ob.moments_variance(m), x.var(0, ddof=1), rtol=1e-4)
    assert float(s.first.count) == 50 and float(s.second.count) == 51
    np.testing.assert_allclose(s.first.mean, x[:50].mean(0), rtol=1e-5)
    tot = ob.split_moments_total(s)
    np.testing.assert_allclose(tot.mean, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(ob.moments_variance(tot), x.var(0, ddof=1), rtol=1e-4)
    val, se = ob.log_mean_exp_value(lme)
    y = np.exp(x.astype(np.float64))
    np.testing.assert_allclose(val, np.log(y.mean(0)), rtol=1e-5)
    np.testing.assert_allclose(se, y.std(0, ddof=1) / math.sqrt(101) / y.mean(0), rtol=1e-3)
    # weight 0 leaves the accumulator untouched, even for NaN
    m2 = ob.moments_update(m, jnp.full(3, jnp.nan), weight=False)
    np.testing.assert_array_equal(m2.mean, m.mean)
    # a NaN value is not hidden
    assert np.isnan(ob.moments_update(m, jnp.full(3, jnp.nan)).mean).all()


def test_histogram_overlap_binder():
    h = ob.histogram_init(4, -1.0, 1.0)
    h = ob.histogram_update(h, jnp.array([-1.0, -0.6, 0.0, 1.0, 1.5, jnp.nan]))
    np.testing.assert_array_equal(h.counts, [2, 0, 1, 1])
    assert int(h.n_outside) == 2
    centres, dens = ob.histogram_density(ob.histogram_merge(h, h))
    np.testing.assert_allclose(centres, [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_allclose(np.sum(dens) * 0.5, 1.0)
    xa = jnp.array([[1.0, -1.0, 1.0, 1.0]])
    np.testing.assert_allclose(ob.overlap(xa, xa), [1.0])
    np.testing.assert_allclose(ob.overlap(xa, -xa), [-1.0])
    # Gaussian m: ⟨m⁴⟩ = 3⟨m²⟩² -> U4 = 0; m = ±1: U4 = 2/3
    assert float(ob.binder_cumulant(2.0, 12.0)) == pytest.approx(0.0)
    assert float(ob.binder_cumulant(1.0, 1.0)) == pytest.approx(2.0 / 3.0)
    with pytest.raises(ValueError, match="n_bins"):
        ob.histogram_init(0, -1, 1)


# ------------------------------------------------------------------------------------------------ diagnostics
def _ar1(rng, n_chains, n, phi, offsets=None):
    x = np.zeros((n_chains, n))
    e = rng.normal(size=(n_chains, n)) * math.sqrt(1 - phi**2)
    x[:, 0] = rng.normal(size=n_chains)
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x + (0 if offsets is None else offsets[:, None])


def _moments_of(trace):
    """SplitMoments of each chain, built with the streaming code (chains on axis 0)."""
    n = trace.shape[1]

    def one(chain):
        def body(s, xt):
            v, t = xt
            return ob.split_moments_update(s, v, t, n), None

        s, _ = jax.lax.scan(body, ob.split_moments_init((), jnp.float64), (chain, jnp.arange(n)))
        return s

    return jax.vmap(one)(jnp.asarray(trace))


def test_rhat_ess_from_traces_and_moments(x64):
    import numpyro.diagnostics as nd

    rng = np.random.default_rng(1)
    phi, m, n = 0.6, 64, 1000
    trace = _ar1(rng, m, n, phi)
    tau = (1 + phi) / (1 - phi)
    true_ess = m * n / tau
    # traces: Geyer ESS within 10% (its sampling error here is a few %); R-hat ≈ 1
    assert abs(dg.effective_sample_size(trace, rank_normalise=False) / true_ess - 1) < 0.1
    assert abs(dg.effective_sample_size(trace) / true_ess - 1) < 0.1
    assert dg.split_rhat(trace) < 1.01
    # streamed moments: classic split R-hat equals numpyro's on the same trace
    split = _moments_of(trace)
    np.testing.assert_allclose(dg.split_rhat_from_moments(split), nd.split_gelman_rubin(trace), rtol=1e-8)
    # batch-means ESS: relative error ~ sqrt(2/(m-1)); require within 3 of those
    ess = dg.ess_from_moments(split)
    assert abs(math.log(ess / true_ess)) < 3 * math.sqrt(2 / (m - 1)), (ess, true_ess)
    # chains that disagree are caught by both
    bad = _ar1(rng, 8, 1000, phi, offsets=np.linspace(-1, 1, 8))
    assert dg.split_rhat(bad) > 1.1
    assert dg.split_rhat_from_moments(_moments_of(bad)) > 1.1
    # a NaN chain is excluded, not propagated
    nan_trace = trace.copy()
    nan_trace[3, 10] = np.nan
    assert np.isfinite(dg.split_rhat(nan_trace)) and np.isfinite(dg.effective_sample_size(nan_trace))
    assert np.isfinite(dg.split_rhat_from_moments(_moments_of(nan_trace)))


def test_summarise_excludes_and_counts_nonfinite():
    v = np.array([[1.0, 2.0, np.nan, 3.0], [1.0, np.inf, 1.0, 1.0]])
    s = dg.summarise(v, chain_axis=-1)
    np.testing.assert_allclose(s.mean, [2.0, 1.0])
    np.testing.assert_allclose(s.stderr, [1.0 / math.sqrt(3), 0.0])
    np.testing.assert_array_equal(s.n_used, [3, 3])
    np.testing.assert_array_equal(s.n_excluded, [1, 1])
    np.testing.assert_array_equal(dg.nonfinite_chains(v), ~np.isfinite(v))
    s2 = dg.summarise(v, exclude=np.array([[True, False, False, False], [False, False, False, False]]))
    np.testing.assert_array_equal(s2.n_excluded, [2, 1])


# ------------------------------------------------------------------------------------------------ run_ensemble
BETAS = [0.2, 0.44, 0.8]


@pytest.fixture(scope="module")
def ising_run():
    model = TinyIsing(jnp.float32(1.0), 3)
    return model, run_ensemble(model, BETAS, key=jax.random.key(0), n_chains=64, n_steps=400, chunk_size=64,
                               kernel="heat_bath")


def test_energy_and_specific_heat_vs_exact(ising_run):
    model, r = ising_run
    u_ex, c_ex, m2_ex = exact_ising(model, BETAS)
    u, c, mag = r.mean_energy(), r.specific_heat(), r.mean("magnetization")
    for got, want in [(u, u_ex), (c, c_ex)]:
        z = (got.mean - want) / got.stderr
        assert np.all(np.abs(z) < 3), z
    z = (mag.mean[:, 2] - m2_ex) / mag.stderr[:, 2]
    assert np.all(np.abs(z) < 3), z
    assert np.all(r.rhat() < 1.05) and np.all(r.ess() > 1000)
    assert r.energy.first.count.shape == (3, 64) and r.magnetization.first.mean.shape == (3, 64, 4)
    assert not r.nonfinite.any() and (r.n_divergent == 0).all()
    # the same test catches a run at the wrong temperatures
    wrong = run_ensemble(model, [0.7 * b for b in BETAS], key=jax.random.key(0), n_chains=64, n_steps=400,
                         chunk_size=64, kernel="heat_bath")
    zw = (wrong.mean_energy().mean - u_ex) / wrong.mean_energy().stderr
    assert np.max(np.abs(zw)) > 5


def test_no_recompilation_for_new_betas_seed_data_or_length(ising_run):
    model, _ = ising_run
    kw = dict(n_chains=64, chunk_size=64, kernel="heat_bath")
    run_ensemble(model, BETAS, key=jax.random.key(0), n_steps=400, **kw)  # warm (no-op if already compiled)
    before = dict(equilibrium.TRACE_COUNTS)
    run_ensemble(model.replace(J=jnp.float32(0.7)), [0.1, 0.3, 0.9], key=jax.random.key(5), n_steps=130,
                 n_warmup=77, **kw)
    assert dict(equilibrium.TRACE_COUNTS) == before


def test_chunk_size_independence_and_determinism(ising_run):
    model, _ = ising_run
    kw = dict(key=jax.random.key(3), n_chains=64, n_steps=60, n_warmup=23, kernel="heat_bath")
    a = run_ensemble(model, BETAS, chunk_size=7, **kw)
    b = run_ensemble(model, BETAS, chunk_size=64, **kw)  # the fixture's compiled chunk
    c = run_ensemble(model, BETAS, chunk_size=7, **kw)
    for x, y in [(a, b), (a, c)]:
        for u, v in zip(jax.tree.leaves((x.energy, x.magnetization, x.acceptance, x.final_state)),
                        jax.tree.leaves((y.energy, y.magnetization, y.acceptance, y.final_state))):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    d = run_ensemble(model, BETAS, chunk_size=7, **{**kw, "key": jax.random.key(4)})
    assert not np.array_equal(np.asarray(a.final_state.position), np.asarray(d.final_state.position))


def test_traces_agree_with_streamed_moments_and_progress():
    model = TinyIsing(jnp.float32(1.0), 3)
    calls = []
    r = run_ensemble(model, [0.4], key=jax.random.key(2), n_chains=4, n_steps=50, n_warmup=10, chunk_size=16,
                     kernel="heat_bath", trace_every=1, progress=lambda d, t: calls.append((d, t)),
                     observables={"s0": lambda x: x[0]})
    tr = r.traces["energy"]
    np.testing.assert_allclose(tr.mean(-1), ob.split_moments_total(r.energy).mean, rtol=1e-5)
    np.testing.assert_allclose(r.traces["s0"].mean(-1), ob.split_moments_total(r.observables["s0"]).mean, atol=1e-6)
    assert calls[-1] == (60, 60) and all(a[0] < b[0] for a, b in zip(calls, calls[1:]))
    assert tr.shape == (1, 4, 50) and r.traces["magnetization"].shape == (1, 4, 50)
    assert np.isfinite(dg.split_rhat(tr[0])) and np.isfinite(dg.effective_sample_size(tr[0]))


def test_nonfinite_chains_flagged_and_excluded():
    """E is NaN for x_0 > 1.5: chains that start there stay NaN (every proposal is rejected); they are flagged,
    counted and excluded; chains outside never enter (NaN proposals are rejected as divergent)."""
    model = Gauss(jnp.array([1.0, 1.0]), nan_above=1.5)
    r = run_ensemble(model, [1.0], key=jax.random.key(9), n_chains=64, n_steps=200, kernel="rwm", step_size=0.8)
    flagged = r.nonfinite[0]
    stuck = np.asarray(r.final_state.position)[0, :, 0] > 1.5
    assert flagged.sum() >= 1
    np.testing.assert_array_equal(flagged, stuck)
    u = r.mean_energy()
    assert int(u.n_excluded[0]) == flagged.sum() and np.isfinite(u.mean[0]) and np.isfinite(u.stderr[0])
    assert r.specific_heat().n_excluded[0] == flagged.sum() and np.isfinite(r.specific_heat().mean[0])
    assert r.n_divergent[0][~flagged].sum() > 0


def test_disorder_axis():
    models = [TinyIsing(jnp.float32(1.0), 3), TinyIsing(jnp.float32(0.5), 3)]
    stacked = stack_models(models)
    kw = dict(key=jax.random.key(1), n_chains=48, n_steps=300, chunk_size=100, kernel="heat_bath",
              disorder_axis=True)
    r = run_ensemble(stacked, [0.3, 0.7], **kw)
    assert r.energy.first.count.shape == (2, 2, 48) and r.step_size.shape == (2, 2)
    u = r.mean_energy()
    for d, m in enumerate(models):
        z = (u.mean[d] - exact_ising(m, [0.3, 0.7])[0]) / u.stderr[d]
        assert np.all(np.abs(z) < 3), z
    before = dict(equilibrium.TRACE_COUNTS)
    run_ensemble(stack_models([models[1], models[0]]), [0.2, 0.5], **kw)
    assert dict(equilibrium.TRACE_COUNTS) == before


def test_continuous_adaptation_and_moments():
    model = Gauss(jnp.array([0.5, 2.0, 10.0]))
    betas = np.array([0.5, 4.0])
    r = run_ensemble(model, betas, key=jax.random.key(4), n_chains=16, n_steps=600, kernel="hmc",
                     observables={"x2": lambda x: x * x})
    acc = r.acceptance_rate().mean
    assert np.all(np.abs(acc - 0.8) < 0.1), acc
    assert r.step_size[1] < r.step_size[0]  # stiffer target -> smaller step
    mu = r.mean("x2")
    want = 1.0 / (1.0 + betas[:, None] * np.asarray(model.a))
    z = (mu.mean - want) / mu.stderr
    assert np.all(np.abs(z) < 3.5), z  # 6 z-scores
    assert np.all(r.rhat("x2") < 1.05)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(betas=[-0.1, 0.5]), "betas"),
        (dict(betas=[np.nan]), "betas"),
        (dict(n_chains=0), "n_chains"),
        (dict(n_steps=0), "n_steps"),
        (dict(kernel="gibbs"), "unknown kernel 'gibbs'"),
        (dict(chunk_size=-3), "chunk_size"),
        (dict(step_size=-1.0, kernel="rwm"), "step_size"),
        (dict(initial_position=np.zeros(5)), "initial_position"),
        (dict(observables={"energy": lambda x: x[0]}), "observable"),
    ],
)
def test_bad_input(kwargs, match):
    args = dict(betas=[0.5], key=jax.random.key(0), n_chains=2, n_steps=4)
    args.update(kwargs)
    model = Gauss(jnp.ones(3)) if args.get("kernel") == "rwm" else TinyIsing(jnp.float32(1.0), 3)
    betas = args.pop("betas")
    with pytest.raises(ValueError, match=match):
        run_ensemble(model, betas, **args)


def test_dtypes_follow_x64(dtype):
    """float32 by default, float64 inside enable_x64: statistics and states keep the model's precision."""
    model = TinyIsing(jnp.asarray(1.0, dtype), 3)
    r = run_ensemble(model, [0.4], key=jax.random.key(0), n_chains=4, n_steps=20, kernel="heat_bath")
    assert r.energy.first.mean.dtype == dtype and r.final_state.position.dtype == dtype
    assert np.isfinite(r.mean_energy().mean).all()
