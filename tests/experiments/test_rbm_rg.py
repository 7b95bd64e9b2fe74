"""`thermodl reproduce rbm-rg`: the PCD gradient is the log-likelihood gradient, the locality measure, and a tiny
end-to-end run (Ising data by the engine, PCD training, AIS vs exact log Z at checkpoints)."""

import csv
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from thermodl.experiments import rbm_rg
from thermodl.models import enumerate_states


def test_pcd_gradient_is_the_log_likelihood_gradient(x64):
    """With the fantasy samples replaced by the exact model distribution, the PCD surrogate's gradient equals
    −∇ (mean log-likelihood) + the L1 subgradient (checked on an enumerable 5×3 spin RBM)."""
    key = jax.random.key(3)
    n_v, n_h, l1 = 5, 3, 0.01
    k1, k2, k3, k4 = jax.random.split(key, 4)
    params = {"W": 0.7 * jax.random.normal(k1, (n_v, n_h)), "a": 0.3 * jax.random.normal(k2, (n_v,)),
              "b": 0.3 * jax.random.normal(k3, (n_h,))}
    data = jnp.where(jax.random.bernoulli(k4, 0.6, (7, n_v)), 1.0, -1.0)

    def mean_ll(p):
        rbm = rbm_rg._rbm(p)
        return jnp.mean(rbm.log_marginal_visible(data, 1.0, log_partition=rbm.exact_log_partition(1.0)))

    states = enumerate_states(n_v, (-1.0, 1.0), jnp.float64)
    p_v = jnp.exp(rbm_rg._rbm(params).log_marginal_visible(states, 1.0))
    grads = jax.vmap(lambda v: jax.grad(rbm_rg._pcd_loss)(params, data, v[None], l1))(states)
    expected = jax.tree.map(lambda g: jnp.tensordot(p_v, g, axes=1), grads)
    want = jax.tree.map(lambda g: -g, jax.grad(mean_ll)(params))
    want["W"] = want["W"] + l1 * jnp.sign(params["W"])
    for k in ("W", "a", "b"):
        np.testing.assert_allclose(expected[k], want[k], rtol=1e-9, atol=1e-12)


def test_block_locality():
    L, n_h = 8, 16  # blocks of 2×2
    local = np.zeros((L * L, n_h))
    for j in range(n_h):
        r, c = divmod(j, 4)
        f = np.zeros((L, L))
        f[2 * r: 2 * r + 2, 2 * c: 2 * c + 2] = np.random.default_rng(j).normal(size=(2, 2))
        local[:, j] = f.ravel()
    np.testing.assert_allclose(rbm_rg.block_locality(local, L), 1.0)
    np.testing.assert_allclose(rbm_rg.block_locality(np.ones((L * L, n_h)), L), 1.0 / n_h)
    wrapped = np.zeros((L, L))
    wrapped[0, 0] = wrapped[L - 1, L - 1] = wrapped[0, L - 1] = wrapped[L - 1, 0] = 1.0  # a block across the seam
    assert rbm_rg.block_locality(np.tile(wrapped.ravel()[:, None], (1, n_h)), L)[0] == pytest.approx(1.0)


def test_mosaic_layout():
    img = rbm_rg._mosaic(np.random.default_rng(0).normal(size=(16, 5)), 4)
    assert img.shape == (2 * 5 - 1, 3 * 5 - 1)
    assert np.nanmax(np.abs(img)) == pytest.approx(1.0)


def test_unknown_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        rbm_rg.run(tmp_path, size="huge")


def test_tiny_run_writes_table_data_and_figure(tmp_path):
    res = rbm_rg.run(tmp_path, size="tiny", seed=0)
    for k in ("figure", "table_md", "table_csv", "data"):
        assert (tmp_path / res[k].split("/")[-1]).exists()
    cfg = rbm_rg._SIZES["tiny"]
    rows = res["rows"]
    assert len(rows) == 1 + len(cfg["checkpoints"]) + 2 + 1 + 1
    ising, ais = rows[0], [r for r in rows if r["method"] == "ais"]
    assert ising["quantity"].startswith("Ising 4x4 energy") and ising["pass"]
    assert [r["step"] for r in ais] == list(cfg["checkpoints"])
    # fixed seed: every AIS estimate within 3 stderr of the exact log Z, and the likelihood grew
    assert all(r["pass"] and r["stderr"] > 0 for r in ais)
    # W ~ 0.01 N(0, 1), no biases: log Z = log Z(0) + ½ Σ W² + O(W⁴) for spin units
    assert ais[0]["theory"] == pytest.approx((16 + 4) * math.log(2.0), abs=0.02)
    gains = [r for r in rows if "gain" in r["quantity"]]
    assert len(gains) == 2 and all(r["pass"] and r["z"] > 3 for r in gains)
    bound = next(r for r in rows if "-S/N" in r["quantity"])
    assert bound["measured"] < bound["theory"] + 3 * bound["stderr"] and bound["pass"]
    with open(res["table_csv"]) as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    ds = xr.open_dataset(res["data"])
    assert ds["W"].shape == (len(cfg["checkpoints"]), 16, cfg["n_hidden"])
    assert ds.attrs["ising_neg_entropy_per_spin"] < 0
    ds.close()
