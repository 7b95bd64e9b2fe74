"""`thermodl reproduce gibbs-learning`: the Gibbs-learning RS theory against known numbers and against its own
variational form, the symmetry transformations (Householder rotation, gauge), the exact version-space enumeration
against brute force, and a tiny end-to-end run."""

import csv
import itertools
import math

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from thermodl.experiments import gibbs_learning as gl
from thermodl.experiments import theory_perceptron as tp
from thermodl.models.perceptron import BinaryPerceptron, SphericalPerceptron


# ------------------------------------------------------------------------------------------------ theory
def test_spherical_gibbs_known_numbers():
    assert tp.gibbs_error_spherical(0.0) == 0.5
    assert 1000 * tp.gibbs_error_spherical(1000.0) == pytest.approx(0.625, abs=1e-3)  # ε ≈ 0.625/α
    a = 0.01  # small α: R ≈ 2α/π
    assert tp.gibbs_overlap_spherical(a) == pytest.approx(2 * a / math.pi, rel=0.02)
    errs = [tp.gibbs_error_spherical(a) for a in (0.5, 1.0, 2.0, 4.0, 8.0)]
    assert all(e1 > e2 for e1, e2 in zip(errs, errs[1:]))


@pytest.mark.parametrize("alpha", [0.5, 2.0, 6.0])
def test_spherical_gibbs_overlap_extremises_the_rs_entropy(alpha):
    """The closed equation R/√(1−R) = (α/π)∫Dt e^{−Rt²/2}/H(−√R t) is the stationarity condition of the RS
    entropy s(R) = ½ ln(1−R) + R/2 + 2α∫Dt H(−ut) ln H(−ut) (Engel & Van den Broeck ch. 2)."""
    R = tp.gibbs_overlap_spherical(alpha)

    def s(r):
        return 0.5 * math.log1p(-r) + 0.5 * r + alpha * tp._teacher_energetic(r)

    h = 1e-5
    assert (s(R + h) - s(R - h)) / (2 * h) == pytest.approx(0.0, abs=1e-5)


def test_binary_gibbs_transition_and_spinodal():
    assert tp.binary_gibbs_transition() == pytest.approx(1.245, abs=1e-3)  # Györgyi 1990; STS 1990
    assert tp.binary_spinodal() == pytest.approx(1.493, abs=1e-3)  # Zdeborová & Krzakala 2016
    b0 = tp.gibbs_binary_branch(0.0)
    assert b0.entropy == pytest.approx(math.log(2)) and b0.error == 0.5
    with pytest.raises(ValueError, match="beyond the spinodal"):
        tp.gibbs_binary_branch(1.6)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 1.4])
def test_binary_gibbs_branch_is_a_saddle_point(alpha):
    b = tp.gibbs_binary_branch(alpha)
    f = tp._binary_gibbs_functional
    h = 1e-5
    assert (f(b.R + h, b.R_hat, alpha) - f(b.R - h, b.R_hat, alpha)) / (2 * h) == pytest.approx(0.0, abs=1e-6)
    assert (f(b.R, b.R_hat + h, alpha) - f(b.R, b.R_hat - h, alpha)) / (2 * h) == pytest.approx(0.0, abs=1e-6)
    assert f(b.R, b.R_hat, alpha) == pytest.approx(b.entropy, abs=1e-12)
    assert b.error == pytest.approx(math.acos(b.R) / math.pi)
    # the Ising student, with fewer weight vectors to choose from, generalises better than the spherical one
    assert b.error < tp.gibbs_error_spherical(alpha)


# ------------------------------------------------------------------------------------------------ symmetries
def test_householder_maps_teacher_to_first_axis_and_keeps_energies():
    rng = np.random.default_rng(0)
    t = rng.standard_normal(9)
    H = gl.householder_to_first_axis(t)
    np.testing.assert_allclose(H @ t / np.linalg.norm(t), np.eye(9)[0], atol=1e-12)
    np.testing.assert_allclose(H @ H.T, np.eye(9), atol=1e-12)
    X, y = rng.standard_normal((20, 9)), np.sign(rng.standard_normal(20))
    m, m_rot = SphericalPerceptron(X, y), SphericalPerceptron(X @ H, y)
    for _ in range(10):
        w = rng.standard_normal(9)
        w *= 3 / np.linalg.norm(w)
        assert float(m.energy(jnp.asarray(w))) == float(m_rot.energy(jnp.asarray(H @ w)))
    assert float(gl.spherical_gen_error(jnp.asarray(np.eye(9)[0] * 3.0))) == pytest.approx(0.0, abs=1e-6)
    assert float(gl.binary_gen_error(jnp.asarray(-np.ones(9)))) == pytest.approx(1.0)


def test_exact_version_space_enumeration_matches_brute_force():
    """Overlap histogram of the gauge-transformed, padded version space vs direct enumeration with
    BinaryPerceptron.energy on the original data (the teacher is always a solution)."""
    N, P = 7, 9
    X, y, t = gl._teacher_data(5, (1,), N, P, "binary_perceptron")
    Xg, yg, n_pad = gl.pad_patterns((X * t[None, :]).astype(np.float32), y, P + 3)
    hist = np.asarray(gl._solution_overlaps(jnp.asarray(Xg), jnp.asarray(yg), jnp.asarray(n_pad)))
    m = BinaryPerceptron(X.astype(np.float32), y)
    brute = np.zeros(N + 1, int)
    for w in itertools.product((-1.0, 1.0), repeat=N):
        w = np.asarray(w, np.float32)
        if float(m.energy(jnp.asarray(w))) == 0:
            brute[int((w @ t + N) // 2)] += 1
    np.testing.assert_array_equal(hist, brute)
    assert brute[N] == 1 and int(m.count_solutions()) == brute.sum()
    eps = gl._exact_gibbs_error(hist[None])[0]
    r = (2 * np.arange(N + 1) - N) / N
    assert eps == pytest.approx((brute * np.arccos(r) / np.pi).sum() / brute.sum())


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("size", gl.SIZES)
def test_size_presets_are_consistent(size):
    cfg = gl._SIZES[size]
    assert len(cfg.sph_N) >= 2 and len(cfg.enum_N) >= 2 and max(cfg.enum_N + (cfg.engine_N,)) <= 24
    # at least one verdict row on each side of the binary transition
    alpha_c = tp.binary_gibbs_transition()
    assert any(a < alpha_c - gl.ALPHA_WINDOW for a in cfg.enum_alphas)
    assert any(a > alpha_c + gl.ALPHA_WINDOW for a in cfg.enum_alphas)


def test_unknown_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        gl.run(tmp_path, size="huge")


@pytest.mark.slow
def test_tiny_run_writes_table_data_and_figure(tmp_path):
    res = gl.run(tmp_path, size="tiny", seed=2)
    with open(res["table_csv"]) as f:
        names = [r["quantity"] for r in csv.DictReader(f)]
    assert sum(q.startswith("spherical Gibbs error, N=8") for q in names) == 2
    assert sum(q.startswith("binary Gibbs error, N=7") for q in names) == 2  # engine vs enumeration
    assert "binary RS first-order transition alpha_c" in names and "binary RS spinodal alpha_sp" in names
    ds = xr.open_dataset(res["data"])
    assert ds["sph_gen_error"].shape == (2, 2, 3)
    assert ((ds["sph_gen_error"] >= 0) & (ds["sph_gen_error"] <= 0.5)).all()
    assert ds["engine_gen_error"].shape == (2, 3)
    ds.close()
    assert res["figure"].endswith(".png")
