"""The chain axis sharded over devices: 8 virtual CPU devices (a subprocess, since XLA_FLAGS must be set before
JAX is imported) give the same numbers as 1 device."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from thermodl.engine import sharding, sweep

CONFIG = {
    "model": {"name": "sk", "n": 8},
    "sweep": {"beta": [0.5, 1.5], "disorder_seed": [0, 1, 2]},
    # 12 chains in blocks of 3: 4 blocks, padded to 8 on 8 devices (1 block each), 4 sequential blocks on 1
    "estimator": {"n_chains": 12, "n_steps": 40, "n_warmup": 8, "chain_block": 3},
    "output": {"unit_size": 4},
}

_CHILD = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from thermodl.engine import sharding, sweep
    assert jax.device_count() == 8, jax.devices()
    mesh = sharding.chain_mesh()
    # a toy lane function: each chain c draws from fold_in(key, c) -- output sharded over the 8 devices
    f = sharding.shard_over_chains(
        lambda scale, c: jax.vmap(lambda i: scale * jax.random.normal(jax.random.fold_in(jax.random.key(0), i)))(c),
        mesh, 1)
    out = f(jnp.float32(2.0), sharding.chain_indices(13, mesh))
    assert out.shape == (16,) and len(out.sharding.device_set) == 8, (out.shape, out.sharding)
    np.save(sys.argv[2], np.asarray(out))
    sweep.run_sweep(json.loads(sys.argv[1]), out=sys.argv[3], progress=False)
""")


def _toy_reference(n):
    return np.asarray(jax.vmap(lambda i: 2.0 * jax.random.normal(jax.random.fold_in(jax.random.key(0), i)))(
        jnp.arange(n)))


def test_one_device_mesh_and_padding():
    mesh = sharding.chain_mesh()
    assert mesh.axis_names == ("chains",) and mesh.devices.size == jax.device_count()
    assert sharding.padded_size(13, mesh) % mesh.devices.size == 0 and sharding.padded_size(13, mesh) >= 13
    assert sharding.padded_size(13, mesh, block=4) % 4 == 0
    ids = sharding.chain_indices(5, mesh, block=2)
    np.testing.assert_array_equal(np.asarray(ids), np.arange(sharding.padded_size(5, mesh, 2)))
    f = sharding.shard_over_chains(lambda s, c: jax.vmap(
        lambda i: s * jax.random.normal(jax.random.fold_in(jax.random.key(0), i)))(c), mesh, 1)
    np.testing.assert_array_equal(np.asarray(f(jnp.float32(2.0), ids))[:5], _toy_reference(5))
    assert "chains" in sharding.describe_mesh(mesh)


@pytest.mark.slow
def test_eight_devices_equal_one_device(tmp_path):
    import json

    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    toy, out8 = tmp_path / "toy.npy", tmp_path / "eight.nc"
    res = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(CONFIG), str(toy), str(out8)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    # keys from the global chain index: the 8-device toy draws are the 1-device ones
    np.testing.assert_array_equal(np.load(toy)[:13], _toy_reference(13))
    one = sweep.run_sweep(CONFIG, out=tmp_path / "one.nc", progress=False)
    xr.testing.assert_identical(xr.load_dataset(out8), one)
