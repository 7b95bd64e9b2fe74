"""The one equilibrium runner on 8 virtual CPU devices: ``thermodynamics`` (independent chains), parallel
tempering (``log_partition(method="pt")``) and a disorder-axis PT run give bitwise the same numbers as on 1 device
for a fixed ``chain_block``, and the default block agrees to float32 rounding. XLA_FLAGS must be set before JAX is
imported, so every device count runs in a subprocess."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

_CHILD = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=" + sys.argv[1]
    import jax, numpy as np
    from thermodl.engine.api import log_partition, thermodynamics
    from thermodl.engine.tempering import run_tempering
    from thermodl.models import SK, stack_models
    assert jax.device_count() == int(sys.argv[1])
    block = None if sys.argv[3] == "none" else int(sys.argv[3])
    m = SK.random(jax.random.key(3), 10)
    ds = thermodynamics(m, [0.3, 0.8, 1.2], key=0, n_chains=12, n_steps=200, chain_block=block, n_integration=0)
    e = log_partition(m, 1.2, method="pt", key=1, n_chains=12, n_steps=200, chain_block=block)
    ms = stack_models([SK.random(jax.random.key(d), 8) for d in range(3)])
    pt = run_tempering(ms, [0.2, 0.6, 1.0, 1.4], key=2, n_chains=12, n_steps=100, disorder_axis=True,
                       n_copies=2, adapt_ladder=False, chain_block=block)
    out = np.concatenate([ds["U"].values, ds["C"].values, ds["log_Z"].values, [e.value, e.stderr],
                          np.ravel(pt.mean_energy().mean), np.ravel(pt.overlap_counts).astype(float)])
    np.save(sys.argv[2], out)
""")


def _run(tmp_path, n_devices: int, block) -> np.ndarray:
    path = tmp_path / f"out_{n_devices}_{block}.npy"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    subprocess.run([sys.executable, "-c", _CHILD, str(n_devices), str(path), str(block)], check=True, env=env,
                   timeout=900)
    return np.load(path)


@pytest.mark.slow
def test_eight_devices_equal_one_device(tmp_path):
    one = _run(tmp_path, 1, 3)
    eight = _run(tmp_path, 8, 3)  # 12 chains in blocks of 3: padded to 24 on 8 devices
    np.testing.assert_array_equal(one, eight)
    default = _run(tmp_path, 8, "none")  # blocks of 2 chains per device: same up to float32 rounding
    np.testing.assert_allclose(default, one, rtol=1e-4, atol=1e-4)
