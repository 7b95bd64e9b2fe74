"""Data sets (models.data)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from thermodl.models import data, topologies
from thermodl.models.weights import weight_ensemble


def test_gardner_patterns():
    X, y = data.gardner_patterns(jax.random.key(0), 300, 40)
    assert X.shape == (300, 40) and y.shape == (300,) and X.dtype == jnp.float32
    assert set(np.unique(X)) == {-1.0, 1.0} and set(np.unique(y)) == {-1.0, 1.0}
    # fair coins: the mean of n = 12000 ±1 entries has stderr 1/√n
    assert abs(float(X.mean())) * math.sqrt(X.size) < 4 and abs(float(y.mean())) * math.sqrt(300) < 4
    X2, _ = data.gardner_patterns(jax.random.key(0), 300, 40)
    np.testing.assert_array_equal(X, X2)
    with pytest.raises(ValueError, match="P must be"):
        data.gardner_patterns(jax.random.key(0), 0, 4)


def test_teacher_student_binary_perceptron():
    ts = data.teacher_student(jax.random.key(1), 30, 11, teacher="binary_perceptron", P_test=50, inputs="binary")
    assert ts.X.shape == (30, 11) and ts.X_test.shape == (50, 11) and ts.y_test.shape == (50,)
    assert set(np.unique(ts.teacher_params)) <= {-1.0, 1.0} and ts.teacher_params.shape == (11,)
    f = np.asarray(ts.X) @ np.asarray(ts.teacher_params) / math.sqrt(11)
    np.testing.assert_array_equal(ts.y, np.where(f > 0, 1.0, -1.0))
    # the teacher's flat weights are in the order of a student ensemble of the same topology: zero errors
    student = weight_ensemble(topologies.Perceptron(11, rngs=nnx.Rngs(5)), ts.X, ts.y, loss="errors",
                              prior="binary", X_test=ts.X_test, y_test=ts.y_test)
    assert float(student.energy(ts.teacher_params)) == 0.0 and float(student.test_error(ts.teacher_params)) == 0.0


def test_teacher_student_committee_and_custom_module():
    ts = data.teacher_student(jax.random.key(2), 20, 6, teacher="committee", n_hidden=3, P_test=4)
    np.testing.assert_allclose(ts.y, ts.teacher(ts.X)[:, 0], rtol=1e-6)
    student = weight_ensemble(topologies.CommitteeMachine(6, 3, rngs=nnx.Rngs(9)), ts.X, ts.y)
    assert float(student.energy(ts.teacher_params)) == pytest.approx(0.0, abs=1e-10)
    mlp = topologies.MLP(5, [3], 1, rngs=nnx.Rngs(0))
    ts2 = data.teacher_student(jax.random.key(3), 10, 999, teacher=mlp, P_test=0, labels="sign")
    assert ts2.X.shape == (10, 5) and ts2.X_test.shape == (0, 5)
    np.testing.assert_array_equal(ts2.y, np.where(mlp(ts2.X)[:, 0] > 0, 1.0, -1.0))


def test_teacher_student_output_noise_flip_rate():
    # Gaussian inputs: the teacher field h ~ N(0, q²) with q = |w*|/√N; with output noise σ the label flips
    # with probability arctan(σ/q)/π.
    P, N, sigma = 4000, 20, 0.5
    ts = data.teacher_student(jax.random.key(4), P, N, teacher="perceptron", P_test=0, noise=sigma)
    h = np.asarray(ts.X, np.float64) @ np.asarray(ts.teacher_params, np.float64) / math.sqrt(N)
    q = float(np.linalg.norm(np.asarray(ts.teacher_params, np.float64))) / math.sqrt(N)
    flips = np.asarray(ts.y) != np.where(h > 0, 1.0, -1.0)
    p = math.atan(sigma / q) / math.pi
    z = (flips.mean() - p) / math.sqrt(p * (1 - p) / P)
    assert abs(z) < 4, (flips.mean(), p, z)


def test_teacher_student_bad_inputs():
    key = jax.random.key(0)
    for kwargs, msg in [(dict(teacher="transformer"), "teacher"), (dict(inputs="uniform"), "inputs"),
                        (dict(labels="soft"), "labels"), (dict(noise=-1.0), "noise"), (dict(P_test=-1), "P_test")]:
        with pytest.raises(ValueError, match=msg):
            data.teacher_student(key, 5, 3, **kwargs)
    with pytest.raises(ValueError, match="one output"):
        data.teacher_student(key, 5, 3, teacher=topologies.MLP(3, [], 2, rngs=nnx.Rngs(0)))


def test_load_npz_roundtrip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 3)), rng.integers(0, 3, 6)
    good = tmp_path / "d.npz"
    np.savez(good, X=X, y=y, Z=np.ones(2))
    Xl, yl = data.load_npz(good)
    np.testing.assert_allclose(Xl, X, rtol=1e-6)
    np.testing.assert_array_equal(yl, y)
    assert jnp.issubdtype(yl.dtype, jnp.integer)
    assert data.load_npz(good, x_key="Z", y_key=None).y is None
    with pytest.raises(ValueError, match="does not exist"):
        data.load_npz(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=r"no array 'labels'; it has: X, Z, y"):
        data.load_npz(good, y_key="labels")
    bad = tmp_path / "nan.npz"
    np.savez(bad, X=np.where(X > 1, np.nan, X), y=y)
    with pytest.raises(ValueError, match="'X' contains NaN"):
        data.load_npz(bad)
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, X=X, y=y[:5])
    with pytest.raises(ValueError, match="6 examples but 'y' has 5"):
        data.load_npz(mismatch)
    garbage = tmp_path / "garbage.npz"
    garbage.write_text("not a zip file")
    with pytest.raises(ValueError, match="cannot read"):
        data.load_npz(garbage)


def test_digits():
    from sklearn.datasets import load_digits

    raw = load_digits()
    full = data.digits(test_fraction=0.0)
    assert full.X.shape == (1797, 64) and full.X_test is None
    assert float(full.X.min()) == 0.0 and float(full.X.max()) == 1.0
    np.testing.assert_array_equal(np.bincount(np.asarray(full.y)), np.bincount(raw.target))
    d = data.digits(classes=(0, 1), test_fraction=0.25, seed=3)
    n01 = int(np.sum(np.isin(raw.target, (0, 1))))
    assert len(d.y) + len(d.y_test) == n01 and len(d.y_test) == round(0.25 * n01)
    assert set(np.unique(d.y)) == {-1.0, 1.0}
    assert int(np.sum(d.y == -1) + np.sum(d.y_test == -1)) == int(np.sum(raw.target == 0))
    # the split is a pure function of the seed, and the images of class 0 map to label -1
    d2 = data.digits(classes=(0, 1), test_fraction=0.25, seed=3)
    np.testing.assert_array_equal(d.X, d2.X)
    zeros = raw.data[raw.target == 0] / 16.0
    first = np.asarray(d.X[np.asarray(d.y) == -1][0], np.float64)
    assert np.min(np.abs(zeros - first).sum(1)) < 1e-6
    small = data.digits(classes=(3, 5, 8), n_train=10)
    assert small.X.shape == (10, 64) and set(np.unique(small.y)) <= {0, 1, 2}
    for kwargs, msg in [(dict(classes=(1,)), "classes"), (dict(classes=(1, 1)), "classes"),
                        (dict(classes=(0, 10)), "classes"), (dict(test_fraction=1.0), "test_fraction")]:
        with pytest.raises(ValueError, match=msg):
            data.digits(**kwargs)
