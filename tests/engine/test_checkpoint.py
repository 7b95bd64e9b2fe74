"""Checkpointed long runs (engine.checkpoint): a run killed with SIGKILL at a random moment and resumed from its
checkpoint gives bit-identical results to an uninterrupted run (ensemble and parallel tempering, ladder adaptation
included); foreign and corrupt checkpoints are refused with a clear message."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from thermodl.engine import observables as ob
from thermodl.engine.ensemble import run_ensemble
from thermodl.engine.tempering import run_tempering
from thermodl.models import SK

_CHILD = textwrap.dedent("""
    import sys
    import jax, numpy as np
    from thermodl.engine import observables as ob
    from thermodl.engine.ensemble import run_ensemble
    from thermodl.engine.tempering import run_tempering
    from thermodl.models import SK
    kind, ck, out = sys.argv[1], sys.argv[2], sys.argv[3]
    m = SK.random(jax.random.key(3), 10)
    if kind == "pt":
        r = run_tempering(m, (0.0, 1.5, 6), key=1, n_chains=8, n_steps=600, n_warmup=600, chunk_size=5,
                          checkpoint=ck, checkpoint_every=1)
        extra = [r.betas, np.ravel(r.exchange["swap_acceptance"])]
    else:
        r = run_ensemble(m, [0.3, 1.0], key=1, n_chains=8, n_steps=3000, chunk_size=5, kernel="flip_metropolis",
                         checkpoint=ck, checkpoint_every=1)
        extra = [r.step_size]
    tot = ob.split_moments_total(r.energy)
    np.save(out, np.concatenate([np.ravel(tot.mean), np.ravel(tot.m2), np.ravel(r.positions)] + extra))
""")


def _child(kind, ck, out):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen([sys.executable, "-c", _CHILD, kind, str(ck), str(out)], env=env)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ensemble", "pt"])
def test_sigkill_then_resume_is_bit_identical(tmp_path, kind):
    ref = tmp_path / "ref.npy"
    assert _child(kind, tmp_path / "ref_ck", ref).wait(timeout=600) == 0
    ck = tmp_path / "ck.npz"
    p = _child(kind, ck, tmp_path / "never.npy")
    deadline = time.time() + 300
    while not ck.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    time.sleep(float(np.random.default_rng().uniform(0.2, 1.5)))
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert ck.exists(), "the run never wrote a checkpoint"
    resumed = tmp_path / "resumed.npy"
    assert _child(kind, ck, resumed).wait(timeout=600) == 0
    np.testing.assert_array_equal(np.load(resumed), np.load(ref))


def test_foreign_and_corrupt_checkpoints_are_refused(tmp_path):
    m = SK.random(jax.random.key(3), 8)
    ck = tmp_path / "run.npz"
    a = run_ensemble(m, [0.5, 1.0], key=0, n_chains=4, n_steps=40, chunk_size=10, checkpoint=ck)
    assert ck.exists()
    b = run_ensemble(m, [0.5, 1.0], key=0, n_chains=4, n_steps=40, chunk_size=10, checkpoint=ck)  # finished run
    np.testing.assert_array_equal(ob.split_moments_total(a.energy).mean, ob.split_moments_total(b.energy).mean)
    for change in (dict(key=1), dict(betas=[0.5, 1.1]), dict(n_steps=50)):
        kw = dict(key=0, betas=[0.5, 1.0], n_steps=40) | change
        with pytest.raises(ValueError, match="different run"):
            run_ensemble(m, kw.pop("betas"), n_chains=4, chunk_size=10, checkpoint=ck, **kw)
    with pytest.raises(ValueError, match="different run"):
        run_tempering(m, (0.0, 1.0, 4), key=0, n_chains=4, n_steps=10, checkpoint=ck)
    ck.write_bytes(ck.read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match="cannot be read"):
        run_ensemble(m, [0.5, 1.0], key=0, n_chains=4, n_steps=40, chunk_size=10, checkpoint=ck)
    ck.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot be read"):
        run_ensemble(m, [0.5, 1.0], key=0, n_chains=4, n_steps=40, chunk_size=10, checkpoint=ck)
