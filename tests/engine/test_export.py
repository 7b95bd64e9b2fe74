"""ArviZ export of runner traces: az.summary works, dims are (chain, draw, beta), copies become chains."""

import numpy as np
import pytest

from thermodl.engine.ensemble import run_ensemble
from thermodl.engine.export import to_inference_data
from thermodl.models import Ising2D

az = pytest.importorskip("arviz")


def test_inference_data_and_summary():
    r = run_ensemble(Ising2D(3), [0.3, 0.5], key=0, n_chains=4, n_steps=100, trace_every=2)
    idata = to_inference_data(r, model="Ising2D 3x3")
    post = idata.posterior
    assert post["energy"].dims == ("chain", "draw", "beta") and post["energy"].shape == (4, 50, 2)
    np.testing.assert_array_equal(post["energy"].values[:, :, 1], np.asarray(r.traces["energy"])[1])
    assert post["energy"].attrs["long_name"] and post.attrs["kernel"] == r.kernel
    summary = az.summary(idata)
    assert "energy[0.3]" in summary.index and np.isfinite(summary["r_hat"].values).all()


def test_copies_are_chains_and_no_traces_is_an_error():
    r = run_ensemble(Ising2D(3), [0.4], key=1, n_chains=3, n_steps=40, trace_every=4, n_copies=2)
    assert to_inference_data(r).posterior["energy"].shape == (6, 10, 1)
    with pytest.raises(ValueError, match="trace_every"):
        to_inference_data(run_ensemble(Ising2D(3), [0.4], key=1, n_chains=2, n_steps=10))
