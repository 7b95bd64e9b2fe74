"""Discrete kernels (flip_metropolis, heat_bath, block_gibbs) against exact Boltzmann distributions.

The tiny models (3×3 / 4×4 periodic Ising, a 10-spin SK-like model, a 4+3 {0,1} RBM) are written here as
pairwise energies E(x) = −½ xᵀJx − hᵀx (J symmetric, zero diagonal) so the kernels are tested independently of
models/. Samples are the final states of many independent chains started from exact β = 0 draws; histograms are
compared with the enumerated distribution by χ² (sparse bins pooled), p-values combined over seeds by Fisher's
method.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from thermodl.kernels import block_gibbs, flip_metropolis, heat_bath

SPINS = (-1.0, 1.0)
BITS = (0.0, 1.0)
P_MIN = 1e-3  # combined p-value threshold for a correct sampler
SEEDS = (0, 1, 2)


# ----------------------------------------------------------------------------------------------- tiny models
class Pairwise:
    """E(x) = −½ xᵀJx − hᵀx over sites in ``values``; ΔE_i = −(x'_i − x_i)(h_i + (Jx)_i) since J_ii = 0."""

    def __init__(self, J, h, values):
        J = np.asarray(J, np.float64)
        assert np.allclose(J, J.T) and np.all(np.diag(J) == 0)
        self.J_np, self.h_np, self.values, self.dim = J, np.asarray(h, np.float64), values, J.shape[0]

    def arrays(self, dtype):
        return jnp.asarray(self.J_np, dtype), jnp.asarray(self.h_np, dtype)

    def states(self):
        """All 2^dim configurations [2^dim, dim], row k = binary digits of k (site 0 least significant)."""
        bits = (np.arange(2**self.dim)[:, None] >> np.arange(self.dim)[None, :]) & 1
        return np.where(bits == 1, self.values[1], self.values[0]).astype(np.float64)

    def energies(self):
        s = self.states()
        return -0.5 * np.einsum("si,ij,sj->s", s, self.J_np, s) - s @ self.h_np

    def probs(self, beta):
        logp = -beta * self.energies()
        return np.exp(logp - np.logaddexp.reduce(logp))

    def index(self, x):
        x = np.asarray(x)
        return ((x == self.values[1]).astype(np.int64) << np.arange(self.dim)).sum(-1)


def ising(L):
    J = np.zeros((L * L, L * L))
    for r in range(L):
        for c in range(L):
            i = r * L + c
            for j in (r * L + (c + 1) % L, ((r + 1) % L) * L + c):
                J[i, j] += 1.0
                J[j, i] += 1.0
    return Pairwise(J, np.zeros(L * L), SPINS)


def sk(n=10, seed=0):
    rng = np.random.default_rng(seed)
    J = np.triu(rng.normal(size=(n, n)) / np.sqrt(n), 1)
    return Pairwise(J + J.T, 0.3 * rng.normal(size=n), SPINS)


def rbm(nv=4, nh=3, seed=1):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(nv, nh))
    J = np.zeros((nv + nh, nv + nh))
    J[:nv, nv:], J[nv:, :nv] = W, W.T
    return Pairwise(J, 0.5 * rng.normal(size=nv + nh), BITS)


def colour_masks(L, colours):
    """Lattice colourings: (r+c) mod `colours`; 2 colours need even L, 3 colours work for L = 3."""
    r, c = np.divmod(np.arange(L * L), L)
    return jnp.asarray(np.stack([(r + c) % colours == k for k in range(colours)]))


# ----------------------------------------------------------------------------------------------- statistics
def chi2_pvalue(counts, probs, min_expected=5.0):
    """χ² goodness of fit; bins with expected count < min_expected are pooled into one."""
    counts, probs = np.asarray(counts, np.float64), np.asarray(probs, np.float64)
    expected = counts.sum() * probs
    keep = expected >= min_expected
    obs = list(counts[keep]) + ([counts[~keep].sum()] if (~keep).any() else [])
    exp = list(expected[keep]) + ([expected[~keep].sum()] if (~keep).any() else [])
    assert len(obs) >= 2
    return stats.chisquare(obs, exp).pvalue


def fisher(pvalues):
    return stats.combine_pvalues(np.maximum(pvalues, 1e-300), method="fisher").pvalue


# ----------------------------------------------------------------------------------------------- chain runner
N_CHAINS = 4000


def pairwise_fns(J, h, values):
    """energy, ΔE(x, i) and ΔE(x) of E(x) = −½ xᵀJx − hᵀx (J zero-diagonal): ΔE_i = −(x'_i − x_i)(h_i + (Jx)_i)."""
    lo, hi = values

    def energy(x):
        return -0.5 * x @ (J @ x) - h @ x

    def delta(x, i):
        return -(lo + hi - 2 * x[i]) * (J[i] @ x + h[i])

    def delta_all(x):
        return -(lo + hi - 2 * x) * (J @ x + h)

    return energy, delta, delta_all


def kernel_and_args(name, J, h, masks, values, order="random"):
    energy, delta, delta_all = pairwise_fns(J, h, values)
    if name == "block_gibbs":
        return block_gibbs, (delta_all, masks, values), energy
    if name == "flip_metropolis":
        return flip_metropolis, (delta, values, order), energy
    return heat_bath, (delta, values), energy


@functools.lru_cache(maxsize=None)
def get_runner(name, values, n_sweeps, order="random"):
    """jit(vmap) over N_CHAINS chains: exact β = 0 start, ``n_sweeps`` kernel steps, final states.

    Couplings, fields, masks, β and the seed are traced, so one compilation serves every test of a kernel.
    Chain c uses fold_in(key(seed), c).
    """
    lo, hi = values

    def one_chain(key, beta, J, h, masks):
        kernel, args, energy = kernel_and_args(name, J, h, masks, values, order)
        k0, krun = jax.random.split(key)
        x0 = jnp.where(jax.random.bernoulli(k0, 0.5, h.shape), hi, lo).astype(h.dtype)
        state = kernel.init(x0, energy)

        def body(t, s):
            return kernel.step(jax.random.fold_in(krun, t), s, energy, beta, *args)[0]

        return jax.lax.fori_loop(0, n_sweeps, body, state)

    @jax.jit
    def run(seed, beta, J, h, masks):
        keys = jax.vmap(lambda c: jax.random.fold_in(jax.random.key(seed), c))(jnp.arange(N_CHAINS))
        return jax.vmap(one_chain, in_axes=(0, None, None, None, None))(keys, beta, J, h, masks)

    return run


def run_chains(name, model, masks, beta, seed, n_sweeps=60, order="random"):
    J, h = model.arrays(jnp.float32)
    masks = jnp.ones((1, model.dim), bool) if masks is None else masks
    return get_runner(name, model.values, n_sweeps, order)(seed, beta, J, h, masks)


def state_pvalue(name, model, masks, beta_sample, beta_exact, order="random", seeds=SEEDS):
    pvals = []
    for seed in seeds:
        final = run_chains(name, model, masks, beta_sample, seed, order=order)
        counts = np.bincount(model.index(final.position), minlength=2**model.dim)
        pvals.append(chi2_pvalue(counts, model.probs(beta_exact)))
    return fisher(pvals), pvals


def kernel_args(name, model, masks=None, dtype=jnp.float32):
    J, h = model.arrays(dtype)
    return kernel_and_args(name, J, h, masks, model.values)


# ----------------------------------------------------------------------------------------------- χ² tests
MODELS = {"ising3": lambda: ising(3), "sk10": lambda: sk(10), "rbm43": lambda: rbm(4, 3)}
SLOW = pytest.mark.slow
CASES = [
    ("flip_metropolis", "ising3", 0.2),
    ("flip_metropolis", "ising3", 0.6),
    pytest.param("flip_metropolis", "sk10", 1.0, marks=SLOW),
    pytest.param("flip_metropolis", "rbm43", 1.0, marks=SLOW),
    ("heat_bath", "ising3", 0.2),
    ("heat_bath", "ising3", 0.6),
    ("heat_bath", "sk10", 1.0),
    pytest.param("heat_bath", "rbm43", 1.0, marks=SLOW),
    ("block_gibbs", "ising3", 0.2),  # 3-colouring of the 3×3 torus
    ("block_gibbs", "ising3", 0.6),
    ("block_gibbs", "rbm43", 1.0),  # visible / hidden layers
    pytest.param("block_gibbs", "sk10", 1.0, marks=SLOW),  # single-site blocks (B = 10: the rolled-scan path)
]


def default_masks(model_name, model):
    if model_name == "ising3":
        return colour_masks(3, 3)
    if model_name == "rbm43":
        return jnp.asarray(np.arange(7)[None, :] < 4) ^ jnp.asarray([[False], [True]])
    return jnp.eye(model.dim, dtype=bool)


@pytest.mark.parametrize("name,model_name,beta", CASES)
def test_exact_distribution(name, model_name, beta):
    model = MODELS[model_name]()
    p, pvals = state_pvalue(name, model, default_masks(model_name, model), beta, beta)
    assert p > P_MIN, (pvals, p)


@pytest.mark.slow
def test_block_gibbs_checkerboard_4x4_energy_levels():
    """4×4 periodic Ising (65 536 states) with the 2-colour checkerboard, histogram over energy levels."""
    model, beta = ising(4), 0.5
    J, h = model.arrays(jnp.float32)
    energy = pairwise_fns(J, h, model.values)[0]
    levels, inverse = np.unique(model.energies(), return_inverse=True)
    probs = np.bincount(inverse, weights=model.probs(beta), minlength=levels.size)
    pvals = []
    for seed in SEEDS:
        final = run_chains("block_gibbs", model, colour_masks(4, 2), beta, seed, n_sweeps=100)
        e = np.asarray(final.energy, np.float64)
        np.testing.assert_array_equal(e, np.asarray(jax.vmap(energy)(final.position)))
        idx = np.searchsorted(levels, e)
        assert np.all(levels[idx] == e)
        pvals.append(chi2_pvalue(np.bincount(idx, minlength=levels.size), probs))
    assert fisher(pvals) > P_MIN, pvals


def test_systematic_metropolis_is_not_ergodic_on_3x3_ising():
    """Documented failure mode of order="systematic": deterministic ΔE = 0 cycles trap 8 of 512 states."""
    model, beta = ising(3), 0.6
    p, pvals = state_pvalue("flip_metropolis", model, None, beta, beta, order="systematic")
    assert p < P_MIN, (pvals, p)
    energy, delta, _ = pairwise_fns(*model.arrays(jnp.float32), SPINS)
    kernel, args = flip_metropolis, (delta, SPINS, "systematic")
    trapped = model.states()[170]  # the frustrated checkerboard: -x after every sweep, at any β
    state = kernel.init(jnp.asarray(trapped, jnp.float32), energy)
    step = jax.jit(lambda key, s: kernel.step(key, s, energy, 5.0, *args))
    for t in range(4):
        state, info = step(jax.random.key(t), state)
        np.testing.assert_array_equal(state.position, (-1) ** (t + 1) * trapped)
        assert int(info.num_flips) == 9


@pytest.mark.parametrize(
    "name,wrong",
    [("heat_bath", "half_beta"), ("flip_metropolis", "half_beta"), ("block_gibbs", "interacting_block")],
)
def test_wrong_sampler_is_detected(name, wrong):
    """The same χ² machinery rejects a sampler of the wrong distribution (so the tests above can fail)."""
    model, beta = ising(3), 0.6
    masks = jnp.ones((1, 9), bool) if wrong == "interacting_block" else None
    beta_sample = beta / 2 if wrong == "half_beta" else beta
    p, pvals = state_pvalue(name, model, masks, beta_sample, beta)
    assert p < P_MIN, (pvals, p)


# ----------------------------------------------------------------------------------------------- injected ΔE
DIM = 16


def injected(name, value, dtype=jnp.float32, order="random"):
    """Kernel args whose ΔE is the constant ``value`` for every site (a fake model)."""
    energy = lambda x: jnp.zeros((), dtype)  # noqa: E731
    delta = lambda x, i: jnp.asarray(value, dtype)  # noqa: E731
    delta_all = lambda x: jnp.full(x.shape, value, dtype)  # noqa: E731
    if name == "block_gibbs":
        return block_gibbs, (delta_all, colour_masks(4, 2), SPINS), energy
    if name == "flip_metropolis":
        return flip_metropolis, (delta, SPINS, order), energy
    return heat_bath, (delta, SPINS), energy


KERNELS = ["flip_metropolis", "heat_bath", "block_gibbs"]


@pytest.mark.parametrize("name", KERNELS)
def test_infinite_delta_never_flips(name):
    kernel, args, energy = injected(name, jnp.inf)
    x = jnp.ones(DIM)
    state, info = kernel.step(jax.random.key(0), kernel.init(x, energy), energy, 1.3, *args)
    np.testing.assert_array_equal(state.position, x)
    assert int(info.num_flips) == 0 and not bool(info.is_accepted) and not bool(info.is_divergent)
    assert float(info.acceptance_probability) == 0.0
    assert float(state.energy) == 0.0


@pytest.mark.parametrize("name", KERNELS)
def test_nan_delta_is_divergent_and_rejected(name):
    kernel, args, energy = injected(name, jnp.nan)
    x = jnp.ones(DIM)
    state, info = kernel.step(jax.random.key(0), kernel.init(x, energy), energy, 1.0, *args)
    np.testing.assert_array_equal(state.position, x)
    assert bool(info.is_divergent) and int(info.num_flips) == 0
    assert np.isfinite(float(info.acceptance_probability))


@pytest.mark.parametrize("name,value", [("flip_metropolis", -0.5), ("heat_bath", -jnp.inf), ("block_gibbs", -jnp.inf)])
def test_downhill_always_flips(name, value):
    """Metropolis accepts every ΔE < 0; heat bath flips surely only for ΔE = −inf."""
    kernel, args, energy = injected(name, value, order="systematic")
    x = jnp.ones(DIM)
    state, info = kernel.step(jax.random.key(3), kernel.init(x, energy), energy, 2.0, *args)
    np.testing.assert_array_equal(state.position, -x)
    assert int(info.num_flips) == DIM and float(info.acceptance_probability) == 1.0


@pytest.mark.parametrize("name", ["flip_metropolis", "heat_bath"])
def test_beta_zero_accepts_infinite_delta(name):
    """Convention 0·∞ = 0: at β = 0 a flip to an infinite-energy state is as likely as any other."""
    kernel, args, energy = injected(name, jnp.inf)
    x = jnp.ones(DIM)
    _, info = kernel.step(jax.random.key(0), kernel.init(x, energy), energy, 0.0, *args)
    expected = 1.0 if name == "flip_metropolis" else 0.5
    assert float(info.acceptance_probability) == expected and not bool(info.is_divergent)


@pytest.mark.parametrize("name", KERNELS)
def test_flip_frequency_matches_acceptance_rule(name):
    """With a constant injected ΔE = c > 0 every site update is an independent Bernoulli(p) flip,
    p = exp(−βc) (Metropolis) or sigmoid(−βc) (heat bath): binomial z-test on the flip count."""
    c, beta, n_chains = 0.7, 1.1, 2000
    kernel, args, energy = injected(name, c)
    p = np.exp(-beta * c) if name == "flip_metropolis" else 1 / (1 + np.exp(beta * c))

    @jax.jit
    def run(key):
        keys = jax.random.split(key, n_chains)
        st = kernel.init(jnp.ones(DIM), energy)
        return jax.vmap(lambda k: kernel.step(k, st, energy, beta, *args)[1])(keys)

    info = run(jax.random.key(11))
    n = n_chains * DIM
    z = (int(info.num_flips.sum()) - n * p) / np.sqrt(n * p * (1 - p))
    assert abs(z) < 4.0, z
    np.testing.assert_allclose(np.asarray(info.acceptance_probability), p, rtol=1e-5)


# ----------------------------------------------------------------------------------------------- mechanics
def step_closure(name, model, masks, dtype):
    kernel, args, energy = kernel_args(name, model, masks, dtype)
    return kernel, energy, lambda key, state, beta: kernel.step(key, state, energy, beta, *args)


@pytest.mark.parametrize("name", KERNELS)
def test_jit_vmap_and_determinism(name):
    """Un-jitted, jitted and vmapped steps agree; the same key gives the same output (float64: next test)."""
    dtype = jnp.float32
    model = ising(3)
    kernel, energy, step = step_closure(name, model, colour_masks(3, 3), dtype)
    x = jnp.asarray(np.where(np.arange(9) % 2 == 0, 1.0, -1.0), dtype)
    state = kernel.init(x, energy)
    key = jax.random.key(5)
    jit_step = jax.jit(step)
    s1, i1 = step(key, state, 0.4)  # un-jitted
    s2, i2 = jit_step(key, state, 0.4)
    s3, i3 = jit_step(key, state, 0.4)
    assert s1.position.dtype == dtype and s1.energy.dtype == dtype and s1.position.shape == (9,)
    for a, b in zip(jax.tree.leaves((s1, i1)), jax.tree.leaves((s2, i2))):
        assert a.dtype == b.dtype and a.shape == b.shape
    for a, b, c in zip(jax.tree.leaves((s1, i1)), jax.tree.leaves((s2, i2)), jax.tree.leaves((s3, i3))):
        np.testing.assert_array_equal(a, b)  # Ising energies are small integers: exact in any mode
        np.testing.assert_array_equal(b, c)  # same key -> same output
    keys = jax.random.split(jax.random.key(6), 4)
    states = jax.tree.map(lambda a: jnp.stack([a] * 4), state)
    sv, iv = jax.jit(jax.vmap(step, in_axes=(0, 0, None)))(keys, states, 0.4)
    assert sv.position.shape == (4, 9) and iv.num_flips.shape == (4,) and sv.position.dtype == dtype
    for c in range(4):
        np.testing.assert_array_equal(sv.position[c], jit_step(keys[c], state, 0.4)[0].position)


@pytest.mark.parametrize("name", KERNELS)
def test_cached_energy_tracks_position(name, dtype):
    """State.energy stays E(position) over many sweeps (ΔE bookkeeping / per-pass recomputation); dtypes kept."""
    model, n_sweeps = sk(10), 50
    kernel, energy, step = step_closure(name, model, jnp.eye(10, dtype=bool), dtype)
    state = kernel.init(jnp.ones(10, dtype), energy)
    run = jax.jit(lambda key, s: jax.lax.fori_loop(0, n_sweeps, lambda t, s: step(jax.random.fold_in(key, t), s, 0.7)[0], s))
    final = run(jax.random.key(2), state)
    assert final.position.dtype == dtype and final.energy.dtype == dtype
    info = jax.jit(step)(jax.random.key(3), final, 0.7)[1]
    assert info.acceptance_probability.dtype == dtype and info.num_flips.dtype == jnp.int32
    # Each accepted ΔE adds at most one rounding of relative size eps to |E| + |ΔE| ≲ Σ|J| + Σ|h|.
    scale = np.abs(model.J_np).sum() + np.abs(model.h_np).sum()
    tol = 4 * n_sweeps * model.dim * float(jnp.finfo(dtype).eps) * scale
    assert abs(float(final.energy) - float(energy(final.position))) <= tol


def test_bad_inputs_raise():
    model = ising(3)
    energy, delta, delta_all = pairwise_fns(*model.arrays(jnp.float32), SPINS)
    x = jnp.ones(9)
    with pytest.raises(ValueError, match="values"):
        heat_bath.step(jax.random.key(0), heat_bath.init(x, energy), energy, 1.0, delta, (1.0, 1.0))
    with pytest.raises(ValueError, match="values"):
        flip_metropolis.step(jax.random.key(0), flip_metropolis.init(x, energy), energy, 1.0, delta, (1.0,))
    with pytest.raises(ValueError, match="shape"):
        flip_metropolis.init(jnp.ones((2, 9)), energy)
    with pytest.raises(ValueError, match="block_masks"):
        block_gibbs.step(jax.random.key(0), block_gibbs.init(x, energy), energy, 1.0, delta_all, jnp.ones((2, 8), bool), SPINS)
    with pytest.raises(ValueError, match="float"):
        heat_bath.init(jnp.ones(9, jnp.int32), energy)
