"""engine.kernel_binding: kernel choice, option checks, and that each bound kernel samples the right distribution."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from scipy import stats

from thermodl.engine.kernel_binding import CONTINUOUS_KERNELS, DISCRETE_KERNELS, Sampler, make_sampler, resolve_kernel
from thermodl.models.base import enumerate_states

from toys import Gauss, GaussData, SphereField, TinyIsing, TinyIsingBlocks


def _boltzmann_levels(model, beta):
    states = enumerate_states(model.dim)
    e = np.asarray(jax.vmap(model.energy)(states), np.float64)
    levels, inv = np.unique(np.round(e, 6), return_inverse=True)
    lw = -beta * e
    p = np.exp(lw - np.logaddexp.reduce(lw))
    return levels, np.bincount(inv, weights=p)


def _chi2_levels(energies, levels, probs):
    idx = np.searchsorted(levels, np.round(np.asarray(energies, np.float64), 6))
    counts = np.bincount(idx, minlength=len(levels))
    n = counts.sum()
    expected = probs * n
    keep = expected >= 5  # pool rare levels so the chi-square approximation holds
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    if exp[-1] < 5:
        obs, exp = obs[:-1], exp[:-1]
        exp = exp * obs.sum() / exp.sum()
    return stats.chisquare(obs, exp).pvalue


def _final_states(sampler, x0, keys, beta, eps, n_steps):
    def chain(x, key):
        st = sampler.init(x)

        def body(s, t):
            s, _ = sampler.step(jax.random.fold_in(key, t), s, beta, eps)
            return s, None

        st, _ = jax.lax.scan(body, st, jnp.arange(n_steps))
        return st

    return jax.jit(jax.vmap(chain))(x0, keys)


# ------------------------------------------------------------------------------------------------ kernel choice
def test_auto_choice():
    assert resolve_kernel(TinyIsing(jnp.float32(1.0))) == "heat_bath"
    assert resolve_kernel(TinyIsingBlocks(jnp.float32(1.0), 4)) == "block_gibbs"
    assert resolve_kernel(Gauss(jnp.ones(3))) == "hmc"
    assert resolve_kernel(SphereField(jnp.ones(3))) == "sphere"

    @struct.dataclass
    class Rough(Gauss):
        differentiable = False

    assert resolve_kernel(Rough(jnp.ones(3))) == "rwm"
    s = make_sampler(Gauss(jnp.ones(3)))
    assert isinstance(s, Sampler) and s.name == "hmc" and s.target_acceptance == 0.8
    assert make_sampler(Gauss(jnp.ones(3)), "mala").target_acceptance == 0.57
    assert make_sampler(Gauss(jnp.ones(3)), "rwm").target_acceptance == 0.3
    assert make_sampler(TinyIsing(jnp.float32(1.0)), "flip_metropolis").target_acceptance is None


@pytest.mark.parametrize(
    "model, kernel, options, match",
    [
        (TinyIsing(jnp.float32(1.0)), "nuts", {}, "unknown kernel 'nuts'"),
        (TinyIsing(jnp.float32(1.0)), "hmc", {}, "kernel 'hmc' needs a continuous model"),
        (Gauss(jnp.ones(3)), "heat_bath", {}, "kernel 'heat_bath' needs a discrete model"),
        (TinyIsing(jnp.float32(1.0)), "block_gibbs", {}, "needs a model with block_masks"),
        (Gauss(jnp.ones(3)), "sgld", {}, "energy_minibatch"),
        (Gauss(jnp.ones(3)), "hmc", {"num_integration_steps": 0}, "num_integration_steps"),
        (Gauss(jnp.ones(3)), "hmc", {"num_steps": 3}, "unknown option"),
        (Gauss(jnp.ones(3)), "rwm", {"inverse_mass": 2.0}, "unknown option"),
        (Gauss(jnp.ones(3)), "hmc", {"step_size_jitter": 1.5}, "step_size_jitter"),
        (SphereField(jnp.ones(3)), "hmc", {}, "differentiable"),
    ],
)
def test_bad_kernel_or_option(model, kernel, options, match):
    with pytest.raises(ValueError, match=match):
        make_sampler(model, kernel, **options)


def test_unknown_kernel_lists_valid_names():
    with pytest.raises(ValueError) as err:
        make_sampler(Gauss(jnp.ones(3)), "foo")
    for name in DISCRETE_KERNELS + CONTINUOUS_KERNELS:
        assert name in str(err.value)


# ------------------------------------------------------------------------------------------ sampling correctness
@pytest.mark.parametrize("kernel", ["flip_metropolis", "heat_bath", "block_gibbs"])
def test_discrete_kernels_sample_boltzmann(kernel):
    """χ² of the final energies of 2000 independent chains against the exact level distribution (4×4 Ising);
    the same machinery must reject a sampler run at the wrong β."""
    model = TinyIsingBlocks(jnp.float32(1.0), 4)
    beta = 0.35
    sampler = make_sampler(model, kernel)
    n = 2000
    keys = jax.random.split(jax.random.key(7), n)
    x0 = jax.vmap(model.sample_reference)(jax.random.split(jax.random.key(8), n))
    levels, probs = _boltzmann_levels(model, beta)
    st = _final_states(sampler, x0, keys, beta, 1.0, 40)
    np.testing.assert_allclose(np.asarray(st.energy), np.asarray(jax.vmap(model.energy)(st.position)), atol=1e-4)
    assert _chi2_levels(st.energy, levels, probs) > 1e-3
    wrong = _final_states(sampler, x0, keys, 0.6 * beta, 1.0, 40)
    assert _chi2_levels(wrong.energy, levels, probs) < 1e-6


@pytest.mark.parametrize("kernel, eps", [("rwm", 0.5), ("mala", 0.3), ("hmc", 0.15)])
def test_continuous_kernels_gaussian_moments(kernel, eps):
    """Final states of independent chains: E[x_i²] = 1/(1 + β a_i) within 4 standard errors (iid draws)."""
    model = Gauss(jnp.array([0.5, 1.0, 4.0]))
    beta = 2.0
    sampler = make_sampler(model, kernel)
    n = 2000
    keys = jax.random.split(jax.random.key(1), n)
    x0 = jax.vmap(model.sample_reference)(jax.random.split(jax.random.key(2), n))
    x = np.asarray(_final_states(sampler, x0, keys, beta, eps, 150).position, np.float64)
    want = 1.0 / (1.0 + beta * np.asarray(model.a))
    z = (np.mean(x**2, 0) - want) / (np.std(x**2, 0, ddof=1) / math.sqrt(n))
    assert np.all(np.abs(z) < 4), z
    zm = np.mean(x, 0) / (np.std(x, 0, ddof=1) / math.sqrt(n))
    assert np.all(np.abs(zm) < 4), zm
    # and a wrong temperature is detected by the same test
    xw = np.asarray(_final_states(sampler, x0, keys, beta / 4, eps, 150).position, np.float64)
    zw = (np.mean(xw**2, 0) - want) / (np.std(xw**2, 0, ddof=1) / math.sqrt(n))
    assert np.max(np.abs(zw)) > 6


def test_sphere_kernel_stays_on_sphere_and_matches_vmf():
    """|x|² = dim preserved; E[h·x] matches the exact von Mises–Fisher mean (dim 3: coth(κ) − 1/κ per |x|)."""
    h = jnp.array([0.0, 0.0, 0.8])
    model = SphereField(h)
    beta = 1.0
    sampler = make_sampler(model)
    n = 2000
    keys = jax.random.split(jax.random.key(3), n)
    x0 = jax.vmap(model.sample_reference)(jax.random.split(jax.random.key(4), n))
    x = np.asarray(_final_states(sampler, x0, keys, beta, 0.8, 200).position, np.float64)
    np.testing.assert_allclose((x**2).sum(1), 3.0, rtol=1e-4)
    kappa = beta * 0.8 * math.sqrt(3.0)  # vMF on the unit sphere: density ∝ exp(κ u_z), x = √3 u
    want = math.sqrt(3.0) * (1.0 / math.tanh(kappa) - 1.0 / kappa)
    z = (x[:, 2].mean() - want) / (x[:, 2].std(ddof=1) / math.sqrt(n))
    assert abs(z) < 4, z


def test_langevin_and_sgld_run_and_bias_shrinks():
    """Unadjusted kernels are biased by O(step): check the variance error shrinks when the step shrinks."""
    rng = np.random.default_rng(0)
    y = jnp.asarray(rng.normal(size=(16, 2)), jnp.float32)
    model = GaussData(jnp.array([1.0, 1.0]), y=y)
    beta = 0.5
    # posterior precision per coordinate: 1 + β a P ; variance 1/(1 + 8)
    want = 1.0 / (1.0 + beta * 16)
    n = 1000
    keys = jax.random.split(jax.random.key(5), n)
    x0 = jax.vmap(model.sample_reference)(jax.random.split(jax.random.key(6), n))
    for kernel, opts in [("langevin", {}), ("sgld", {"batch_size": 16})]:
        sampler = make_sampler(model, kernel, **opts)
        errs = []
        for eps in (0.1, 0.025):
            x = np.asarray(_final_states(sampler, x0, keys, beta, eps, 300).position, np.float64)
            errs.append(abs(x.var(0).mean() - want))
        assert errs[1] < errs[0], (kernel, errs)


def test_step_same_key_same_output_and_jit_vmap_agree():
    model = Gauss(jnp.array([0.5, 1.0, 4.0]))
    sampler = make_sampler(model, "hmc")
    st = sampler.init(jnp.ones(3))
    k = jax.random.key(11)
    a, _ = sampler.step(k, st, 1.0, 0.2)
    b, _ = jax.jit(sampler.step)(k, st, 1.0, 0.2)
    c, _ = sampler.step(k, st, 1.0, 0.2)
    np.testing.assert_array_equal(a.position, c.position)
    np.testing.assert_allclose(a.position, b.position, rtol=1e-5, atol=1e-6)
    batch = jax.tree.map(lambda v: jnp.stack([v, v]), st)
    v, _ = jax.vmap(sampler.step, in_axes=(0, 0, None, None))(jnp.stack([k, k]), batch, 1.0, 0.2)
    np.testing.assert_allclose(v.position[0], a.position, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ settings-driven binding
def test_sampler_carries_the_kernels_settings():
    from thermodl.engine.kernel_binding import KERNEL_SETTINGS, KERNELS
    from thermodl.kernels import heat_bath, hmc

    s = make_sampler(Gauss(jnp.ones(3)), "hmc")
    assert s.settings is hmc.SETTINGS and s.default_step_size == hmc.SETTINGS.default_step_size
    d = make_sampler(TinyIsing(jnp.float32(1.0)), "heat_bath")
    assert d.settings is heat_bath.SETTINGS and d.target_acceptance is None and d.default_step_size == 1.0
    assert set(KERNELS) == {"auto"} | set(KERNEL_SETTINGS)
    assert set(DISCRETE_KERNELS) == {n for n, k in KERNEL_SETTINGS.items() if k.kind == "discrete"}
    assert {"flip_metropolis", "heat_bath", "block_gibbs"} <= set(DISCRETE_KERNELS)
    assert {"rwm", "mala", "hmc", "langevin", "sgld", "sphere", "slice_sphere"} <= set(CONTINUOUS_KERNELS)


def test_unknown_option_one_clear_message():
    from thermodl.engine.kernel_binding import split_options

    for call in (lambda: make_sampler(Gauss(jnp.ones(3)), "hmc", num_steps=3, inverse_mas=1.0),
                 lambda: split_options("hmc", {"num_steps": 3, "inverse_mas": 1.0})):
        with pytest.raises(ValueError) as err:
            call()
        msg = str(err.value)
        assert msg.startswith("unknown option(s) 'inverse_mas', 'num_steps' for kernel 'hmc'; valid options:")
        for name in ("num_integration_steps", "inverse_mass", "step_size_jitter"):
            assert name in msg
    with pytest.raises(ValueError, match="for kernel 'rwm'; valid options: none"):
        split_options("rwm", {"inverse_mass": 2.0})


def test_split_options_follows_declared_options():
    from thermodl.engine.kernel_binding import split_options

    static, traced = split_options("hmc", {"num_integration_steps": np.int64(7), "inverse_mass": 2,
                                           "step_size_jitter": 0.0})
    assert static == (("num_integration_steps", 7),) and type(static[0][1]) is int
    assert set(traced) == {"inverse_mass", "step_size_jitter"}
    for v in traced.values():
        assert isinstance(v, jax.Array) and v.dtype == jnp.result_type(float) and not v.weak_type
    with pytest.raises(ValueError, match="kernel 'hmc': option num_integration_steps must be a positive int"):
        split_options("hmc", {"num_integration_steps": 10.0})
    with pytest.raises(ValueError, match="step_size_jitter must be a number in"):
        split_options("hmc", {"step_size_jitter": 1.0})
    with pytest.raises(ValueError, match="inverse_mass must be positive"):
        split_options("hmc", {"inverse_mass": np.array([1.0, -1.0, 1.0])})
    assert split_options("sgld", {"batch_size": 8}) == ((("batch_size", 8),), {})
    assert split_options("flip_metropolis", {"order": "systematic"}) == ((("order", "systematic"),), {})
    with pytest.raises(ValueError, match="order must be one of"):
        split_options("flip_metropolis", {"order": "sideways"})
    assert split_options("hmc", {"inverse_mass": None}) == ((), {})  # None: the default
    assert split_options("auto", {}) == ((), {})
    with pytest.raises(ValueError, match="resolve 'auto'"):
        split_options("auto", {"inverse_mass": 1.0})
    with pytest.raises(ValueError, match="unknown kernel 'nuts'"):
        split_options("nuts", {})


def test_traced_option_values_compile_once():
    """Three float values of hmc's inverse_mass (and of the jitter) go through one trace of a jitted step."""
    from thermodl.engine.kernel_binding import split_options

    model = Gauss(jnp.array([0.5, 1.0, 4.0]))
    traces = []

    @functools.partial(jax.jit, static_argnums=0)
    def run(static, traced, key):
        traces.append(1)
        sampler = make_sampler(model, "hmc", **dict(static), **traced)
        state, info = sampler.step(key, sampler.init(jnp.ones(3)), 1.0, 0.1)
        return state.position, info.acceptance_probability

    outs = []
    for m in (1.0, 2.0, 3.0):
        static, traced = split_options("hmc", {"num_integration_steps": 5, "inverse_mass": m,
                                               "step_size_jitter": 0.1 * m})
        outs.append(run(static, traced, jax.random.key(0))[0])
    assert len(traces) == 1
    assert not np.allclose(outs[0], outs[1])  # the values really reach the kernel
    static, traced = split_options("hmc", {"num_integration_steps": 6, "inverse_mass": 1.0,
                                           "step_size_jitter": 0.1})
    run(static, traced, jax.random.key(0))
    assert len(traces) == 2  # a static option is part of the program


def test_hmc_jitter_lives_in_the_kernel_and_matches_the_old_engine_path():
    """make_sampler's hmc step = hmc.step with ε·(1 + j(2u − 1)), u from fold_in(key, 0x6A17), bitwise (the
    formula make_sampler applied before the jitter moved into the kernel); j = 0 is the bare kernel."""
    from thermodl.kernels import hmc

    model = Gauss(jnp.array([0.5, 1.0, 4.0]))
    st = hmc.init(jnp.array([0.3, -0.2, 0.9]), model.energy, model.log_prior)
    key, eps = jax.random.key(4), jnp.float32(0.3)
    u = jax.random.uniform(jax.random.fold_in(key, 0x6A17), (), jnp.float32)
    old, _ = hmc.step(key, st, model.energy, 1.0, model.log_prior, eps * (1.0 + 0.2 * (2.0 * u - 1.0)), 10, 1.0)
    new, _ = make_sampler(model, "hmc").step(key, st, 1.0, eps)
    np.testing.assert_array_equal(np.asarray(new.position), np.asarray(old.position))
    bare, _ = hmc.step(key, st, model.energy, 1.0, model.log_prior, eps, 10)
    off, _ = make_sampler(model, "hmc", step_size_jitter=0).step(key, st, 1.0, eps)
    traced_off, _ = make_sampler(model, "hmc", step_size_jitter=jnp.float32(0.0)).step(key, st, 1.0, eps)
    np.testing.assert_array_equal(np.asarray(off.position), np.asarray(bare.position))
    np.testing.assert_array_equal(np.asarray(traced_off.position), np.asarray(bare.position))
    assert not np.array_equal(np.asarray(bare.position), np.asarray(new.position))
    with pytest.raises(ValueError, match="step_size_jitter"):
        hmc.step(key, st, model.energy, 1.0, model.log_prior, eps, 10, step_size_jitter=1.5)


def test_manifold_and_model_attributes_are_checked():
    with pytest.raises(ValueError, match="kernel 'rwm' samples on the euclidean manifold.*fit this model: "
                                         "slice_sphere, sphere"):
        make_sampler(SphereField(jnp.ones(3)), "rwm")
    with pytest.raises(ValueError, match="kernel 'sphere' samples on the sphere manifold"):
        make_sampler(Gauss(jnp.ones(3)), "sphere")
    with pytest.raises(ValueError, match="kernel 'sgld' needs a model with energy_minibatch, n_data"):
        make_sampler(Gauss(jnp.ones(3)), "sgld")


def test_sgld_default_batch_size_and_flip_order_option():
    y = jnp.asarray(np.random.default_rng(0).normal(size=(40, 2)), jnp.float32)
    model = GaussData(jnp.array([1.0, 1.0]), y=y)
    s = make_sampler(model, "sgld")
    st = s.init(jnp.zeros(2))
    new, info = s.step(jax.random.key(0), st, 1.0, 1e-3)
    assert new.position.shape == (2,) and not bool(info.is_divergent)
    with pytest.raises(ValueError, match="batch_size must be a Python int in \\[1, n_data=40\\]"):
        make_sampler(model, "sgld", batch_size=41).step(jax.random.key(0), st, 1.0, 1e-3)
    ising = TinyIsing(jnp.float32(1.0))
    for order in ("random", "systematic"):
        s = make_sampler(ising, "flip_metropolis", order=order)
        st, _ = s.step(jax.random.key(1), s.init(jnp.ones(ising.dim)), 0.3)
        np.testing.assert_allclose(st.energy, ising.energy(st.position), atol=1e-5)
