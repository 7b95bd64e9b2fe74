"""Exact partition functions: Kaufman's formula vs brute-force enumeration, an independent transfer matrix and
Onsager's infinite-lattice free energy; chunked enumeration vs NumPy; autodiff thermodynamics; bad input."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import logsumexp

from thermodl.models.exact import (
    ExactUnavailableError,
    enumerate_energies,
    enumerate_expectation,
    enumerate_log_partition,
    enumerate_log_sum,
    enumerate_observables,
    exact_thermodynamics,
    ising_critical_beta,
)
from thermodl.models.hopfield import Hopfield
from thermodl.models.ising import Ising2D
from thermodl.models.rbm import RBM
from thermodl.models.sk import SK

BETA_C = 0.5 * math.log(1.0 + math.sqrt(2.0))
BETAS = [0.05, 0.3, BETA_C, 0.6, 2.5]

# ----------------------------------------------------------------------------------- independent references


def all_spin_states(n):
    """[2^n, n] ±1 states, written independently of the library (itertools order)."""
    return np.array(list(itertools.product([-1.0, 1.0], repeat=n)))


def brute_ising_energies(L, M, J, h):
    s = all_spin_states(L * M).reshape(-1, L, M)
    bonds = (s * np.roll(s, 1, axis=1)).sum((1, 2)) + (s * np.roll(s, 1, axis=2)).sum((1, 2))
    return -J * bonds - h * s.sum((1, 2))


def transfer_matrix_log_z(L, M, K, H=0.0):
    """log Tr T^L with rows of M spins, non-symmetric split (row s carries its own intra-row energy) and plain
    repeated multiplication with rescaling — a different route from the library's symmetric squaring."""
    rows = all_spin_states(M)
    intra = np.array([sum(r[c] * r[(c + 1) % M] for c in range(M)) for r in rows])
    T = np.exp(K * (rows @ rows.T) + (K * intra + H * rows.sum(1))[:, None])
    P, log_scale = np.eye(len(rows)), 0.0
    for _ in range(L):
        P = P @ T
        s = P.max()
        P /= s
        log_scale += math.log(s)
    return log_scale + math.log(np.trace(P))


def onsager_log_z_per_site(K):
    """−βf of the infinite square lattice (Onsager 1944):
    ln(2 cosh 2K) + (1/π) ∫_0^{π/2} ln ½(1 + √(1 − κ² sin²φ)) dφ,  κ = 2 sinh 2K / cosh² 2K."""
    kappa = 2.0 * math.sinh(2 * K) / math.cosh(2 * K) ** 2
    integral, _ = quad(lambda p: math.log(0.5 * (1.0 + math.sqrt(1.0 - (kappa * math.sin(p)) ** 2))), 0, math.pi / 2,
                       epsabs=0.0, epsrel=1e-12, limit=200)
    return math.log(2.0 * math.cosh(2 * K)) + integral / math.pi


def rel(a, b):
    return abs(float(a) - float(b)) / max(abs(float(b)), 1e-300)


# ----------------------------------------------------------------------------------- Kaufman


@pytest.mark.parametrize("L,M", [(2, 2), (2, 4), (4, 2), (2, 3), (3, 3), (3, 4), (4, 4), (3, 5)])
@pytest.mark.parametrize("J", [1.0, 0.5, -1.0])
def test_ising_exact_vs_brute_force(L, M, J, x64):
    """Kaufman (h = 0; J < 0 via the gauge map on even lattices, transfer matrix on odd ones) vs all 2^LM states."""
    e = brute_ising_energies(L, M, J, 0.0)
    model = Ising2D(L, M, J=J)
    got = model.exact_log_partition(jnp.asarray(BETAS))
    for b, g in zip(BETAS, got):
        assert rel(g, logsumexp(-b * e)) < 1e-12, (L, M, J, b)


@pytest.mark.parametrize("L,M", [(4, 4), (5, 5), (6, 6), (4, 7), (7, 5), (6, 8), (8, 8)])
def test_kaufman_vs_transfer_matrix(L, M, x64):
    model = Ising2D(L, M)
    betas = [0.1, 0.35, BETA_C, 0.5, 1.5]
    got = model.exact_log_partition(jnp.asarray(betas))
    for b, g in zip(betas, got):
        assert rel(g, transfer_matrix_log_z(L, M, b)) < 1e-10, (L, M, b)


@pytest.mark.parametrize("L,M,J,h", [(4, 4, 1.0, 0.3), (3, 5, 0.6, -0.2), (5, 3, -1.0, 0.0), (3, 3, -0.7, 0.4)])
def test_transfer_matrix_path_vs_brute_force(L, M, J, h, x64):
    """h ≠ 0, or J < 0 on an odd lattice: the library's transfer matrix against enumeration and our NumPy TM."""
    e = brute_ising_energies(L, M, J, h)
    got = Ising2D(L, M, J=J, h=h).exact_log_partition(jnp.asarray(BETAS))
    for b, g in zip(BETAS, got):
        ref = logsumexp(-b * e)
        assert rel(g, ref) < 1e-12, (L, M, J, h, b)
        assert rel(transfer_matrix_log_z(L, M, b * J, b * h), ref) < 1e-12  # the test's own TM is right too


def test_kaufman_large_lattice_against_onsager_and_limits(x64):
    """L = 64: far from T_c finite-size corrections are O(e^{−L/ξ}) ≪ 1e-10, so Kaufman must equal Onsager's
    integral (plus log 2 for the two ordered sectors below T_c); extreme β stay finite and exact."""
    L = 64
    N = L * L
    model = Ising2D(L)
    for K in (0.2, 0.3):  # disordered phase
        assert rel(model.exact_log_partition(K) / N, onsager_log_z_per_site(K)) < 1e-10, K
    for K in (0.6, 0.8):  # ordered phase: two degenerate sectors
        assert rel((model.exact_log_partition(K) - math.log(2)) / N, onsager_log_z_per_site(K)) < 1e-10, K
    # at T_c the finite-size correction is O(1/L²) and shrinks with L
    dev = [float(Ising2D(n).exact_log_partition(BETA_C)) / n**2 - onsager_log_z_per_site(BETA_C) for n in (16, 32, 64)]
    assert all(0 < d < 2.0 / n**2 for d, n in zip(dev, (16, 32, 64))) and dev[0] > dev[1] > dev[2]
    # T → 0: Z = 2 e^{2βN} up to e^{−8β} corrections; T → ∞: high-temperature series
    for b in (20.0, 1000.0):
        assert rel(model.exact_log_partition(b), 2 * b * N + math.log(2)) < 1e-14
    b = 1e-3
    t = math.tanh(b)
    series = N * math.log(2) + 2 * N * math.log(math.cosh(b)) + N * t**4 + 2 * N * t**6
    assert abs(float(model.exact_log_partition(b)) - series) < 1e-9
    assert float(model.exact_log_partition(0.0)) == pytest.approx(N * math.log(2), rel=1e-15)
    # antiferromagnet on the bipartite torus equals the ferromagnet; a non-square lattice is symmetric in L ↔ M
    assert rel(Ising2D(L, J=-1.0).exact_log_partition(0.5), model.exact_log_partition(0.5)) < 1e-15
    assert rel(Ising2D(10, 64).exact_log_partition(0.41), Ising2D(64, 10).exact_log_partition(0.41)) < 1e-12


def test_kaufman_float32_close_to_float64():
    with jax.enable_x64(True):
        ref = np.asarray(Ising2D(32).exact_log_partition(jnp.asarray([0.2, BETA_C, 0.9])))
    got = Ising2D(32).exact_log_partition(jnp.asarray([0.2, BETA_C, 0.9], jnp.float32))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref, rtol=2e-6)


def test_traced_beta_jit_grad_and_vmap(x64):
    traces = []
    model = Ising2D(8, 6)

    @jax.jit
    def f(beta):
        traces.append(1)
        return model.exact_log_partition(beta)

    vals = [f(b) for b in (0.1, 0.4, 0.7)]
    assert len(traces) == 1
    np.testing.assert_allclose(jax.vmap(f)(jnp.asarray([0.1, 0.4, 0.7])), vals, rtol=1e-14)
    # U = −d log Z / dβ: Kaufman by autodiff against a central finite difference
    b, eps = 0.4, 1e-5
    fd = (f(b + eps) - f(b - eps)) / (2 * eps)
    assert rel(jax.grad(f)(b), fd) < 1e-8


@pytest.mark.parametrize("L,M,h", [(3, 5, 0.0), (4, 3, 0.25)])
def test_exact_thermodynamics_vs_enumeration(L, M, h, x64):
    """U, Var(E), C and S from autodiff of Kaufman / the transfer matrix equal the enumerated moments."""
    model = Ising2D(L, M, J=0.8, h=h)
    for b in (0.2, BETA_C, 0.9):
        t = exact_thermodynamics(model, b)
        o = enumerate_observables(model, b)
        for name in ("log_partition", "energy", "energy_variance", "specific_heat", "entropy"):
            assert rel(getattr(t, name), getattr(o, name)) < 1e-9, (name, b)


# ----------------------------------------------------------------------------------- enumeration


def models_for_enumeration():
    k = jax.random.split(jax.random.key(3), 3)
    return [
        SK.random(k[0], 8),
        Hopfield.random(k[1], 3, 9),
        RBM.random(k[2], 4, 5, scale=0.8, units="spin"),
        Ising2D(3, J=0.7, h=0.2),
    ]


def numpy_energies(model):
    lo, hi = model.values
    bits = (np.arange(2**model.dim)[:, None] >> np.arange(model.dim)[None, :]) & 1  # enumerate_states order
    states = np.where(bits == 1, hi, lo)
    return np.asarray(jax.vmap(model.energy)(jnp.asarray(states))), states


def test_enumeration_vs_numpy(x64):
    """log Z, U, Var(E), C, S and p(s) by chunked enumeration (several chunk sizes) against NumPy sums."""
    betas = np.array([0.0, 0.4, 1.1, 3.0])
    for model in models_for_enumeration():
        e, _ = numpy_energies(model)
        lz = np.array([logsumexp(-b * e) for b in betas])
        got = enumerate_log_partition(model, jnp.asarray(betas))  # default chunk: a single chunk here
        assert got.shape == (4,)
        np.testing.assert_allclose(got, lz, rtol=1e-13)
        assert float(got[0]) == pytest.approx(model.log_reference_partition(), rel=1e-15)
        if hasattr(model, "exact_log_partition"):
            np.testing.assert_allclose(model.exact_log_partition(jnp.asarray(betas)), lz, rtol=1e-13)
        obs = enumerate_observables(model, jnp.asarray(betas), chunk_size=32, return_probabilities=True)
        np.testing.assert_allclose(obs.log_partition, lz, rtol=1e-13)
        for k, b in enumerate(betas):
            p = np.exp(-b * e - lz[k])
            u = p @ e
            var = p @ (e - u) ** 2
            np.testing.assert_allclose(obs.probabilities[k], p, rtol=1e-12, atol=1e-300)
            assert abs(float(obs.energy[k]) - u) < 1e-12 * (1 + abs(u))
            assert rel(obs.energy_variance[k], var) < 1e-10
            assert rel(obs.specific_heat[k], b**2 * var) < 1e-10 or b == 0.0
            assert rel(obs.entropy[k], -(p * np.log(p)).sum()) < 1e-10
    np.testing.assert_allclose(enumerate_energies(model, chunk_size=64), e, rtol=1e-14, atol=1e-14)


def test_enumerate_expectation(x64):
    model = Ising2D(3, 4, J=0.5, h=0.1)
    e, states = numpy_energies(model)
    betas = jnp.asarray([0.3, 0.8])
    got = enumerate_expectation(model, betas, lambda x: {"m": jnp.mean(x), "m2": jnp.mean(x) ** 2, "s": x},
                                chunk_size=64)
    for k, b in enumerate([0.3, 0.8]):
        p = np.exp(-b * e - logsumexp(-b * e))
        m = states.mean(1)
        assert rel(got["m"][k], p @ m) < 1e-12 and rel(got["m2"][k], p @ m**2) < 1e-12
        np.testing.assert_allclose(got["s"][k], p @ states, rtol=1e-12)
    assert got["s"].shape == (2, 12)


def test_enumerate_log_sum_counts_and_weights(x64):
    # log Σ_s 1 = n log 2; log Σ_s exp(a·s) = Σ_i log(2 cosh a_i)
    assert float(enumerate_log_sum(lambda s: jnp.zeros(s.shape[0]), 10)) == pytest.approx(10 * math.log(2), rel=1e-15)
    a = jnp.linspace(-1.0, 2.0, 7)
    got = enumerate_log_sum(lambda s: s @ a, 7, chunk_size=8)
    assert rel(got, float(jnp.sum(jnp.log(2 * jnp.cosh(a))))) < 1e-14


def test_float32_enumeration_close_to_float64():
    with jax.enable_x64(True):
        model64 = SK.random(jax.random.key(1), 10)
        ref = np.asarray(enumerate_observables(model64, jnp.asarray([0.5, 2.0])).log_partition)
    model = SK(jnp.asarray(model64.J, jnp.float32))
    got = enumerate_observables(model, jnp.asarray([0.5, 2.0]))
    assert got.log_partition.dtype == jnp.float32
    np.testing.assert_allclose(got.log_partition, ref, rtol=1e-5)


def test_enumeration_is_jittable_with_traced_beta_and_model(x64):
    traces = []

    @jax.jit
    def f(model, beta):
        traces.append(1)
        return enumerate_observables(model, beta, return_probabilities=False).specific_heat

    for k in jax.random.split(jax.random.key(0), 3):
        for b in (0.5, 1.0):
            assert np.isfinite(f(SK.random(k, 7), b))
    assert len(traces) == 1


def test_rbm_exact_sums_the_larger_layer(x64):
    """Both orientations (n_v > n_h with binary units, n_h > n_v with spins) against full enumeration of (v, h)."""
    for units, (nv, nh) in (("binary", (9, 3)), ("spin", (3, 9))):
        model = RBM.random(jax.random.key(nv), nv, nh, scale=0.6, units=units)
        betas = jnp.asarray([0.3, 1.0, 2.0])
        np.testing.assert_allclose(model.exact_log_partition(betas), enumerate_log_partition(model, betas), rtol=1e-13)


# ----------------------------------------------------------------------------------- helpers and bad input


def test_ising_critical_beta():
    assert ising_critical_beta() == pytest.approx(0.44068679350977147, rel=1e-15)
    assert ising_critical_beta(-2.0) == pytest.approx(0.44068679350977147 / 2, rel=1e-15)
    # self-duality: sinh(2β_c J) = 1
    assert math.sinh(2 * ising_critical_beta(0.7) * 0.7) == pytest.approx(1.0, rel=1e-14)
    for bad in (0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="J must be finite and nonzero"):
            ising_critical_beta(bad)


class _Continuous:
    kind = "continuous"
    dim = 3


def test_enumeration_bad_input():
    with pytest.raises(ValueError, match="needs a discrete model"):
        enumerate_log_partition(_Continuous(), 1.0)
    with pytest.raises(ValueError, match=r"2\*\*25 states is too many"):
        enumerate_log_partition(SK(jnp.zeros((25, 25))), 1.0)
    with pytest.raises(ValueError, match="chunk_size must be a positive power of two, got 3"):
        enumerate_log_partition(SK(jnp.zeros((4, 4))), 1.0, chunk_size=3)
    with pytest.raises(ValueError, match="return_probabilities needs dim ≤ 20, got dim=21"):
        enumerate_observables(SK(jnp.zeros((21, 21))), 1.0, return_probabilities=True)
    with pytest.raises(ValueError, match="observable_fn must be callable"):
        enumerate_expectation(SK(jnp.zeros((4, 4))), 1.0, "m")
    with pytest.raises(ValueError, match="beta must be a scalar"):
        exact_thermodynamics(Ising2D(4), jnp.ones(3))
    with pytest.raises(ValueError, match="has no exact_log_partition"):
        exact_thermodynamics(SK(jnp.zeros((22, 22))), 1.0)
    with pytest.raises(ExactUnavailableError):
        Ising2D(13, h=0.5).exact_log_partition(1.0)
