"""`thermodl reproduce no-flattening`: the multiplication-gate theory against exact Taylor numbers, the hand-built
product tree, the masked shallow nets and the training helper, and a tiny end-to-end run."""

import csv
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from flax import nnx

from thermodl.experiments import no_flattening as nf

# ------------------------------------------------------------------------------------------- (a) the gate


def test_softplus_derivatives_are_the_known_taylor_coefficients():
    # softplus(u) = ln 2 + u/2 + u²/8 − u⁴/192 + u⁶/2880 − ...  (sigmoid = 1/2 + u/4 − u³/48 + u⁵/480 − ...)
    np.testing.assert_allclose(nf.softplus_derivatives(6), [math.log(2), 0.5, 0.25, 0, -0.125, 0, 0.25],
                               atol=1e-14)


def test_gate_error_coefficients_and_leading_max_error():
    d = nf.softplus_derivatives(6)
    c2, c4 = nf.gate_error_coefficients(d)
    assert c2 == pytest.approx(-1 / 12) and c4 == pytest.approx(1 / 1440)
    lead, nxt = nf.gate_max_error_theory([0.1, 0.2], d)
    np.testing.assert_allclose(lead, np.array([0.1, 0.2]) ** 2 / 6)  # λ²|σ⁗/σ''|/3 = λ²/6 for softplus
    np.testing.assert_allclose(nxt, -2 / 45 * np.array([0.1, 0.2]) ** 4)


def test_tanh_cannot_make_a_multiplication_gate():
    derivs = np.array([0.0, 1.0, 0.0, -2.0, 0.0, 16.0, 0.0])  # tanh: σ''(0) = 0
    with pytest.raises(ValueError, match="sigma''\\(0\\) != 0"):
        nf.gate_error_coefficients(derivs)


@pytest.mark.parametrize("lam", [0.02, 0.05])
def test_gate_network_error_matches_the_expansion(lam):
    """Measured max error = λ²/6 − (2/45)λ⁴ + O(λ⁶) (the λ⁶ coefficient is ≈ 0.014; bound it by 1): the leading
    term alone misses by the λ⁴ term, which is far above that bound, so a wrong coefficient would fail."""
    lead, nxt = nf.gate_max_error_theory(lam, nf.softplus_derivatives(6))
    err = nf.gate_max_error(lam)
    assert abs(err - (lead + nxt)) < lam**6
    assert abs(err - lead) > 10 * lam**6


# ------------------------------------------------------------------------------------------- (b) networks


def test_registered_and_equal_parameter_counts():
    from thermodl.engine import registry

    assert registry.load_experiment("no-flattening") is nf
    for size in nf.SIZES:
        for n, shallow, deep in nf._SIZES[size]["ensembles"]:
            assert nf.n_params(n, shallow) == nf.n_params(n, deep)
    net = nf.ProductNet(3, [4, 4], rngs=nnx.Rngs(0))
    assert nf.n_params(3, [4, 4]) == 41 == sum(x.size for x in jax.tree.leaves(nnx.state(net, nnx.Param)))


def test_tree_widths_and_neuron_counts():
    assert [nf.tree_widths(n) for n in (2, 3, 4, 5)] == [(4,), (6, 4), (8, 4), (10, 6, 4)]
    for n in (2, 4, 8):  # powers of two: exactly 4(n − 1) neurons (Lin, Tegmark & Rolnick 2017)
        assert sum(nf.tree_widths(n)) == 4 * (n - 1)
    with pytest.raises(ValueError, match="n >= 2"):
        nf.tree_widths(1)


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_hand_built_tree_multiplies(n):
    with jax.enable_x64(True):
        X, y = nf.product_data(jax.random.key(n), n, 2048)
        X, y = jnp.asarray(X, jnp.float64), jnp.asarray(y, jnp.float64)

        def mse(lam):
            f = nf.product_tree(n, lam)(X)[:, 0] * 3.0 ** (n / 2)
            return float(jnp.mean((f - y) ** 2))

        small, big = mse(0.05), mse(0.1)
    assert small < 1e-5
    assert big / small == pytest.approx(16.0, rel=0.2)  # error ∝ λ², so MSE ∝ λ⁴


def test_product_data_has_unit_variance():
    _, y = nf.product_data(jax.random.key(0), 3, 200_000)
    y = np.asarray(y, np.float64)
    # var of a sample variance ≈ (μ₄ − σ⁴)/n; y = 3^{3/2} x₁x₂x₃ has μ₄ = (9/5)³
    se = math.sqrt(((9 / 5) ** 3 - 1) / y.size)
    assert abs(y.var() - 1.0) < 4 * se and abs(y.mean()) < 4 / math.sqrt(y.size)


def test_masked_shallow_net_equals_the_narrow_net():
    wide = nf.ProductNet(3, [6], mask=True, rngs=nnx.Rngs(1))
    wide.mask[...] = jnp.asarray([1.0, 1, 1, 0, 0, 0])
    narrow = nf.ProductNet(3, [3], rngs=nnx.Rngs(2))
    narrow.layers[0].kernel[...] = wide.layers[0].kernel[...][:, :3]
    narrow.layers[0].bias[...] = wide.layers[0].bias[...][:3]
    narrow.layers[1].kernel[...] = wide.layers[1].kernel[...][:3]
    narrow.layers[1].bias[...] = wide.layers[1].bias[...]
    x = jax.random.normal(jax.random.key(0), (5, 3))
    np.testing.assert_allclose(wide(x), narrow(x), rtol=1e-6, atol=1e-6)


def test_minimal_width():
    mse = np.array([[0.5, 0.3], [0.02, np.nan], [0.005, 0.2], [0.001, 0.002]])
    assert nf.minimal_width([1, 2, 4, 8], mse) == 4.0
    assert math.isnan(nf.minimal_width([1, 2], mse[:2]))


def test_training_learns_the_product_of_two():
    """Adam on x₁x₂ (variance 1): every net must end well below the MSE of predicting 0 (= 1)."""
    mse = nf.train_product_nets(2, (4, 6), seeds=2, steps=300, lr=3e-2, n_train=256, n_test=512,
                                key=jax.random.key(0))
    assert mse.shape == (2, 2) and np.all(np.isfinite(mse))
    assert np.all(mse < 0.5)
    deep = nf.train_product_nets(2, None, deep=(4,), seeds=3, steps=50, lr=3e-2, n_train=64, n_test=64,
                                 key=jax.random.key(0))
    assert deep.shape == (1, 3)


def test_bad_input_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="positive hidden widths"):
        nf.ProductNet(2, [], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="steps and seeds must be >= 1"):
        nf.train_product_nets(2, (2,), seeds=0, steps=10, lr=1e-2, n_train=8, n_test=8, key=jax.random.key(0))
    with pytest.raises(ValueError, match="unknown size 'huge'; choose one of: tiny, small, full"):
        nf.run(tmp_path, size="huge")


# ------------------------------------------------------------------------------------------- end to end


def test_tiny_run_writes_table_data_and_figure(tmp_path):
    res = nf.run(tmp_path, size="tiny", seed=0)
    for k in ("figure", "table_md", "table_csv", "data"):
        assert (tmp_path / res[k].split("/")[-1]).exists()
    with open(res["table_csv"]) as fh:
        names = [r["quantity"] for r in csv.DictReader(fh)]
    assert len([q for q in names if q.startswith("max |gate - xy|")]) == 3  # λ = 0.05, 0.1, 0.2 (≤ 0.3)
    for n in (2, 3):
        assert any(q.startswith("minimal shallow width") and q.endswith(f"n={n}") for q in names)
        assert any(q.startswith("trained deep net") and q.endswith(f"n={n}") for q in names)
        assert any(q.startswith("hand-built gate tree") and q.endswith(f"n={n}") for q in names)
    assert sum(q.startswith("log Z repeatability") for q in names) == 2
    assert names[-1].startswith("Delta log Z = log Z(deep [4, 4]) - log Z(shallow [8])")
    rows = {r["quantity"]: r for r in res["rows"]}
    assert all(r["pass"] for q, r in rows.items() if q.startswith(("max |gate", "hand-built")))
    delta = rows[names[-1]]
    assert delta["measured"] == pytest.approx(delta["log_z_deep"] - delta["log_z_shallow"])
    assert delta["stderr"] > 0
    ds = xr.open_dataset(res["data"])
    assert ds["shallow_mse_n3"].shape == (2, 2) and ds["gate_max_error"].shape == (4,)
    assert ds["log_z"].shape == (2,)
    ds.close()
