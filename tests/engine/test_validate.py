"""Input checks: each bad value raises ValueError with one clear message naming it; good values pass through."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thermodl.engine.validate import (
    check_beta,
    check_betas,
    check_choice,
    check_finite_array,
    check_nonnegative_int,
    check_positive_float,
    check_positive_int,
    check_shapes,
)


def _one_line(err):
    msg = str(err.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("beta", [0.0, 0.44, 3, np.float32(1.5), jnp.asarray(2.0)])
def test_check_beta_accepts_finite_nonnegative(beta):
    out = check_beta(beta)
    assert isinstance(out, float) and out == pytest.approx(float(beta))


@pytest.mark.parametrize("beta, shown", [(-0.1, "-0.1"), (math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")])
def test_check_beta_rejects(beta, shown):
    with pytest.raises(ValueError) as err:
        check_beta(beta)
    msg = _one_line(err)
    assert msg.startswith("beta must be finite and >= 0") and shown in msg


def test_check_beta_zero_and_names():
    with pytest.raises(ValueError, match=r"^--beta must be finite and > 0, got 0.0$"):
        check_beta(0.0, "--beta", allow_zero=False)
    for bad in ("0.3", None, [1, "a"]):
        with pytest.raises(ValueError, match="beta must be a number"):
            check_beta(bad)


def test_check_beta_arrays_name_the_bad_element():
    out = check_beta(np.array([0.0, 0.5, 1.0]))
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    with pytest.raises(ValueError) as err:
        check_beta(np.array([0.1, np.nan, 0.3]), "betas")
    assert "betas[1] = nan" in _one_line(err)
    with pytest.raises(ValueError, match=r"betas\[\(1, 0\)\] = -1.0"):
        check_beta(np.array([[0.1, 0.2], [-1.0, 0.3]]), "betas")
    with pytest.raises(ValueError, match="must not be empty"):
        check_beta(np.array([]))


def test_check_beta_passes_tracers_through():
    @jax.jit
    def f(b):
        return check_beta(b) * 2.0

    assert float(f(1.5)) == 3.0


def test_check_betas_grid():
    np.testing.assert_array_equal(check_betas([0, 0.5, 1.0], increasing=True, start_at_zero=True), [0, 0.5, 1.0])
    assert check_betas(0.5).shape == (1,)
    with pytest.raises(ValueError, match=r"strictly increasing, got betas\[1\] = 0.5 >= betas\[2\] = 0.5"):
        check_betas([0, 0.5, 0.5], increasing=True)
    with pytest.raises(ValueError, match=r"must start at 0, got betas\[0\] = 0.1"):
        check_betas([0.1, 0.5], start_at_zero=True)
    with pytest.raises(ValueError, match="one-dimensional"):
        check_betas(np.ones((2, 2)))


@pytest.mark.parametrize("value", [1, 7, np.int64(3), 4.0, np.array(5)])
def test_check_positive_int_accepts(value):
    out = check_positive_int(value, "n_chains")
    assert type(out) is int and out == int(value)


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "4", None, math.nan])
def test_check_positive_int_rejects(value):
    with pytest.raises(ValueError) as err:
        check_positive_int(value, "n_chains")
    assert _one_line(err).startswith("n_chains must be a positive integer, got ")


def test_check_nonnegative_int():
    assert check_nonnegative_int(0, "n_warmup") == 0
    with pytest.raises(ValueError, match="n_warmup must be a non-negative integer, got -1"):
        check_nonnegative_int(-1, "n_warmup")


def test_check_positive_float():
    assert check_positive_float(0.1, "step_size") == 0.1
    assert check_positive_float(0, "sigma", allow_zero=True) == 0.0
    for bad in (0.0, -1.0, math.nan, math.inf, "x", None, True):
        with pytest.raises(ValueError, match="step_size must be"):
            check_positive_float(bad, "step_size")


def test_check_choice_message():
    assert check_choice("method", "ais", ("ais", "ti", "pt", "exact")) == "ais"
    with pytest.raises(ValueError) as err:
        check_choice("method", "foo", ("ais", "ti", "pt", "exact"))
    assert _one_line(err) == "unknown method 'foo'; choose one of: ais, ti, pt, exact"
    with pytest.raises(ValueError, match="unknown kernel 3"):
        check_choice("kernel", 3, ("hmc",))


def test_check_finite_array():
    x = np.arange(6.0).reshape(2, 3)
    assert check_finite_array(x, "X") is not None
    j = jnp.ones(3)
    assert check_finite_array(j, "X") is j
    check_finite_array(np.arange(4), "idx")  # integers are always finite
    bad = x.copy()
    bad[1, 2] = np.nan
    bad[0, 1] = np.inf
    with pytest.raises(ValueError) as err:
        check_finite_array(bad, "X")
    assert _one_line(err) == "X contains 2 non-finite value(s) (NaN or inf), first at X[0, 1]"
    with pytest.raises(ValueError, match="X must be an array of numbers"):
        check_finite_array(np.array(["a", "b"]), "X")


def test_check_shapes_binds_named_dims():
    X, y = np.zeros((20, 5)), np.zeros(20)
    assert check_shapes({"X": X, "y": y}, {"X": ("P", "N"), "y": ("P",)}) == {"P": 20, "N": 5}
    with pytest.raises(ValueError) as err:
        check_shapes({"X": X, "y": np.zeros(19)}, {"X": ("P", "N"), "y": ("P",)})
    assert _one_line(err) == "shape mismatch: y has shape (19,) but axis 0 (P) must be 20 as in X"
    with pytest.raises(ValueError, match=r"y must have 1 dimension\(s\)"):
        check_shapes({"X": X, "y": np.zeros((20, 2))}, {"X": ("P", "N"), "y": ("P",)})
    with pytest.raises(ValueError, match="axis 1 must be 3"):
        check_shapes({"W": np.zeros((2, 4))}, {"W": (None, 3)})
    check_shapes({"W": np.zeros((2, 3))}, {"W": (None, 3)})
