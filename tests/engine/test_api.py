"""engine.api: log_partition dispatch and thermodynamics() against exact enumeration."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from thermodl.engine.api import log_partition, thermodynamics
from thermodl.models.base import enumerate_states
from thermodl.models.exact import enumerate_observables, ising_critical_beta
from thermodl.models.ising import Ising2D

from toys import Gauss

BETA_C = ising_critical_beta()


@struct.dataclass
class Chain:
    """Open Ising chain with random couplings, no closed form here: exact log Z must come from enumeration."""

    J: jax.Array
    kind = "discrete"
    values = (-1.0, 1.0)

    @property
    def dim(self):
        return self.J.shape[0] + 1

    def energy(self, x):
        return -jnp.sum(self.J * x[:-1] * x[1:])

    def delta_energy(self, x, i):
        return self.delta_energy_all(x)[i]

    def delta_energy_all(self, x):
        left = jnp.concatenate([jnp.zeros(1, x.dtype), self.J * x[:-1]])
        right = jnp.concatenate([self.J * x[1:], jnp.zeros(1, x.dtype)])
        return 2.0 * x * (left + right)

    def sample_reference(self, key):
        return jnp.where(jax.random.bernoulli(key, 0.5, (self.dim,)), 1.0, -1.0)

    def log_reference_partition(self):
        return self.dim * math.log(2.0)


def kaufman(beta, L=4):
    with jax.enable_x64(True):
        return float(Ising2D(L).exact_log_partition(jnp.float64(beta)))


# ------------------------------------------------------------------------------------------------ log_partition
def test_exact_closed_form_and_auto():
    est = log_partition(Ising2D(4), BETA_C)
    assert est.method == "exact" and est.stderr == 0.0 and est.diagnostics["source"] == "closed_form"
    assert est.value == pytest.approx(kaufman(BETA_C), rel=1e-12)
    assert log_partition(Ising2D(4), BETA_C, method="exact").value == est.value


def test_exact_by_enumeration():
    J = np.random.default_rng(0).normal(size=9)
    model = Chain(jnp.asarray(J, jnp.float32))
    est = log_partition(model, 0.8, method="exact")
    s = np.asarray(enumerate_states(10), np.float64)
    e = -(J * s[:, :-1] * s[:, 1:]).sum(1)
    assert est.diagnostics["source"] == "enumeration"
    assert est.value == pytest.approx(np.logaddexp.reduce(-0.8 * e), rel=1e-6)  # J rounded to float32
    # the open chain has a closed form too: Z = 2 Π 2cosh(βJ)
    assert est.value == pytest.approx(math.log(2) + np.sum(np.log(2 * np.cosh(0.8 * J.astype(np.float32)))),
                                      rel=1e-6)


def test_auto_uses_smc_without_exact_and_exact_refuses():
    model = Gauss(jnp.array([1.0, 3.0]))
    with pytest.raises(ValueError, match="no exact log Z"):
        log_partition(model, 1.0, method="exact")
    est = log_partition(model, 1.0, key=jax.random.key(0), tol=0.1)  # auto: SMC to a tolerance
    assert est.method == "smc" and est.diagnostics["method_chosen"] == "smc"
    assert abs(est.z_score(-0.5 * (math.log(2.0) + math.log(4.0)))) < 3


@pytest.mark.parametrize("method", ["ti", "pt"])
def test_dispatch_to_ti_and_pt(method):
    opts = dict(n_chains=8, n_steps=400) if method == "pt" else dict(n_chains=8, n_steps=400, n_betas=12)
    est = log_partition(Ising2D(4), 0.3, method=method, key=3, **opts)
    assert est.method == method and est.stderr > 0
    assert abs(est.z_score(kaufman(0.3))) < 3, est


@pytest.mark.parametrize(
    "beta, kwargs, match",
    [
        (-0.5, {}, "beta must be finite and >= 0"),
        (float("nan"), {}, "beta"),
        (0.5, {"method": "mcmc"}, "unknown method 'mcmc'"),
        (0.5, {"method": "ais"}, "key is required"),
        (0.5, {"method": "exact", "n_chains": 3}, "takes no options"),
        (0.5, {"method": "ais", "key": 0, "n_chains": 0}, "n_chains"),
        (0.5, {"method": "ais", "key": 0, "kernel": "hmc"}, "kernel 'hmc'"),
    ],
)
def test_log_partition_bad_input(beta, kwargs, match):
    with pytest.raises(ValueError, match=match):
        log_partition(Ising2D(4), beta, **kwargs)


# ------------------------------------------------------------------------------------------------ thermodynamics
BETAS = np.array([0.1, 0.25, BETA_C, 0.6])


@pytest.fixture(scope="module")
def exact_4x4():
    with jax.enable_x64(True):
        ex = enumerate_observables(Ising2D(4), jnp.asarray(BETAS, jnp.float64))
        return {k: np.asarray(v) for k, v in ex._asdict().items() if v is not None}


@pytest.mark.parametrize("method", ["ti", "pt"])
def test_thermodynamics_vs_enumeration(method, exact_4x4):
    grid = BETAS if method == "pt" else np.unique(np.concatenate([BETAS, np.linspace(0.03, 0.57, 12)]))
    ds = thermodynamics(Ising2D(4), grid, key=jax.random.key(1), method=method, n_chains=16, n_steps=800)
    ds = ds.sel(beta=BETAS)
    assert ds.attrs["method"] == method and ds.attrs["log_Z0"] == pytest.approx(16 * math.log(2))
    for name, ref in [("U", "energy"), ("C", "specific_heat"), ("log_Z", "log_partition"), ("S", "entropy")]:
        z = (ds[name].values - exact_4x4[ref]) / ds[f"{name}_stderr"].values
        assert np.all(np.abs(z) < 3), (name, z)
    f_exact = -exact_4x4["log_partition"] / BETAS
    assert np.all(np.abs((ds["F"].values - f_exact) / ds["F_stderr"].values) < 3)
    assert np.all(ds["rhat"].values < 1.05) and np.all(ds["ess"].values > 100)
    assert np.all(ds["n_excluded"].values == 0) and np.all((ds["acceptance"] > 0) & (ds["acceptance"] <= 1))
    assert ds["reliable"].values.all() and ds.attrs["n_unreliable"] == 0, ds.attrs["reasons"]  # honest, not flagged


def test_thermodynamics_with_beta_zero_and_structure():
    ds = thermodynamics(Ising2D(4), [0.0, 0.1, 0.2], key=0, method="ti", n_chains=4, n_steps=50)
    assert list(ds["beta"].values) == [0.0, 0.1, 0.2]
    for v in ("U", "F", "S", "C", "log_Z"):
        assert v in ds and f"{v}_stderr" in ds
    assert ds["log_Z"].values[0] == pytest.approx(16 * math.log(2)) and ds["log_Z_stderr"].values[0] == 0
    assert ds["S"].values[0] == pytest.approx(16 * math.log(2)) and ds["C"].values[0] == 0
    assert np.isnan(ds["F"].values[0])
    assert "log_Z_quadrature_error" in ds and "log_Z_mc_stderr" in ds
    assert ds["reliable"].dtype == bool and ds["reliable"].shape == (3,)
    assert len([ln for ln in ds.attrs["reasons_by_beta"].splitlines() if ln]) == int((~ds["reliable"].values).sum())
    assert all(np.issubdtype(ds[v].dtype, np.number) or ds[v].dtype == bool for v in ds.data_vars)  # sweeps: floats


@pytest.mark.parametrize(
    "betas, kwargs, match",
    [
        ([0.1, -0.2], {}, "betas"),
        ([0.3, 0.2, 0.5], {}, "strictly increasing"),
        ([0.1, float("nan")], {}, "betas"),
        ([0.1, 0.2], {"method": "ais"}, "unknown method 'ais'"),
        ([0.1, 0.2], {"n_chains": 0}, "n_chains"),
        ([0.1, 0.2], {"n_steps": -5}, "n_steps"),
        ([0.2], {"method": "ti", "n_integration": 0}, "at least 3 grid points"),
        ([0.1, 0.2], {"kernel": "nope"}, "unknown kernel 'nope'"),
    ],
)
def test_thermodynamics_bad_input(betas, kwargs, match):
    args = dict(key=0, n_chains=2, n_steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        thermodynamics(Ising2D(4), betas, **args)
