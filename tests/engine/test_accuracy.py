"""engine.accuracy / log_partition(tol=...): the accuracy target is met honestly on exact models the growth policy
was not tuned on, limits give reliable=False with the reason and a warning, "auto" records its choice, and bad
tolerances are refused with one clear ValueError."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thermodl.engine import accuracy
from thermodl.engine.api import AUTO_TOL, exact_log_partition, log_partition, resolve_method
from thermodl.models.ising import Ising2D
from thermodl.models.linear import BayesianLinear
from thermodl.models.rbm import RBM
from thermodl.models.sk import SK

from toys import Gauss, GaussExact


def _bayes_linear():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(25, 4))
    y = X @ np.array([0.7, -0.4, 0.2, 1.1]) + 0.4 * rng.normal(size=25)
    return BayesianLinear(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32), sigma_w=1.0)


# None of these models or βs were used while choosing the growth constants (those were Ising 4×4 at 0.3/0.44/0.6,
# an 8×5 RBM, SK N=14 seed 2 and a 30×4 Bayesian linear model).
CASES = {
    "ising4_beta0.25": (lambda: Ising2D(4), 0.25),
    "ising4_beta0.7": (lambda: Ising2D(4), 0.7),
    "rbm_7x4": (lambda: RBM.random(jax.random.key(21), 7, 4, scale=1.0), 1.0),
    "bayes_linear": (_bayes_linear, 1.0),
    "sk_12": (lambda: SK.random(jax.random.key(9), 12), 1.0),
}
TOL = 0.025


def _check_reached(est, exact, tol, k=3.0):
    d = est.diagnostics
    assert est.reliable and not est.reasons and d["tol_reached"] is True
    assert est.stderr <= tol and d["tol"] == tol
    assert d["rounds"] and d["rounds"][-1]["stderr"] == pytest.approx(est.stderr)
    assert d["budget_used"] > 0 and d["stop_reason"] == "stderr <= tol and reliable"
    assert abs(est.value - exact) <= k * tol, (est.value - exact, est.stderr)


@pytest.mark.parametrize("name", ["ising4_beta0.25", pytest.param("rbm_7x4", marks=pytest.mark.slow)])
def test_smc_tol_reached_honestly(name):
    make, beta = CASES[name]
    model = make()
    exact = exact_log_partition(model, beta).value
    for seed in (0, 1):
        est = log_partition(model, beta, method="smc", key=seed, tol=TOL)
        assert est.method == "smc" and est.diagnostics["n_runs"] >= accuracy.MIN_TOL_RUNS
        _check_reached(est, exact, TOL)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ising4_beta0.7", "bayes_linear", "sk_12"])
def test_smc_tol_reached_honestly_slow(name):
    make, beta = CASES[name]
    model = make()
    exact = exact_log_partition(model, beta).value
    z = []
    for seed in range(3):
        est = log_partition(model, beta, method="smc", key=seed, tol=TOL)
        _check_reached(est, exact, TOL)
        z.append((est.value - exact) / est.stderr)
    assert abs(np.mean(z)) < 3.0 / math.sqrt(len(z)) + 0.5, z  # no gross bias across seeds


def test_smc_pools_runs_of_one_configuration():
    """Rounds that keep (N, sweeps) add runs to the pool: the pool only grows, and the final estimate uses them all."""
    model, beta = Ising2D(4), 0.25
    est = log_partition(model, beta, method="smc", key=3, tol=0.015)
    rounds = est.diagnostics["rounds"]
    last = rounds[-1]
    same = [r for r in rounds if (r["n_particles"], r["n_sweeps"]) == (last["n_particles"], last["n_sweeps"])]
    runs = [r["n_runs"] for r in same]
    assert runs == sorted(runs) and runs[-1] == est.diagnostics["n_runs"] == len(est.diagnostics["log_z_runs"])


def test_ais_tol_reached_honestly():
    model, beta = CASES["rbm_7x4"][0](), 1.0
    exact = exact_log_partition(model, beta).value
    est = log_partition(model, beta, method="ais", key=4, tol=0.03, n_chains=128, n_temperatures=50)
    assert est.method == "ais"
    _check_reached(est, exact, 0.03)


@pytest.mark.slow
def test_ti_and_pt_tol_reached():
    model, beta = Ising2D(4), 0.3
    exact = exact_log_partition(model, beta).value
    est = log_partition(model, beta, method="ti", key=5, tol=0.05, n_chains=8, n_steps=300, n_betas=12)
    _check_reached(est, exact, 0.05)
    est = log_partition(model, beta, method="pt", key=6, tol=0.05, n_chains=8, n_steps=400)
    _check_reached(est, exact, 0.05)


# ------------------------------------------------------------------------------------------------ limits
@pytest.mark.parametrize("limit", [{"max_budget": 5e4}, {"max_time": 1.0}])
def test_limit_exhausted_gives_unreliable_with_reason_and_warning(limit):
    model, beta = _bayes_linear(), 1.0
    with pytest.warns(RuntimeWarning, match="tolerance 0.0001 not reached within"):
        est = log_partition(model, beta, method="smc", key=0, tol=1e-4, **limit)
    d = est.diagnostics
    assert not est.reliable and d["tol_reached"] is False and d["unreliable"] is True
    assert "not reached within" in est.reasons[-1] and est.reasons[-1] == d["stop_reason"]
    key, value = next(iter(limit.items()))
    assert f"{key}={value:g}" in est.reasons[-1]
    assert math.isfinite(est.value) and est.stderr > 1e-4  # the last estimate comes back, with its error bar
    if "max_budget" in limit:
        assert d["budget_used"] <= 5e4 or len(d["rounds"]) == 1  # the first round always runs


def test_limit_exhausted_ais():
    with pytest.warns(RuntimeWarning, match="not reached within max_budget"):
        est = log_partition(Ising2D(4), 0.4, method="ais", key=0, tol=1e-4, max_budget=5e3, n_chains=64,
                            n_temperatures=20)
    assert not est.reliable and est.diagnostics["tol_reached"] is False


# ------------------------------------------------------------------------------------------------ auto
def test_auto_picks_exact_when_available_and_records_it():
    est = log_partition(Ising2D(4), 0.4)
    assert est.method == "exact" and resolve_method(Ising2D(4), "auto") == "exact"
    assert est.diagnostics["method_chosen"] == "exact" and "closed_form" in est.diagnostics["method_reason"]


def test_auto_picks_smc_with_default_tol_otherwise():
    model = Gauss(jnp.array([1.0, 3.0]))
    exact = GaussExact(jnp.array([1.0, 3.0])).exact_log_partition(1.0)
    assert resolve_method(model, "auto") == "smc"
    est = log_partition(model, 1.0, key=0)
    d = est.diagnostics
    assert est.method == "smc" and d["method_chosen"] == "smc" and "no exact value" in d["method_reason"]
    assert d["tol"] == AUTO_TOL
    _check_reached(est, float(exact), AUTO_TOL)


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("tol", [0, 0.0, -0.1, float("nan"), float("inf"), "0.1", True, [0.1]])
def test_bad_tol_is_one_clear_error(tol):
    with pytest.raises(ValueError, match="tol must be a positive finite number"):
        log_partition(Ising2D(4), 0.4, method="smc", key=0, tol=tol)


@pytest.mark.parametrize("kwargs, match", [
    ({"tol": 0.1, "max_time": -1.0}, "max_time must be a positive finite number"),
    ({"tol": 0.1, "max_budget": float("nan")}, "max_budget must be a positive finite number"),
    ({"max_time": 10.0}, "apply only with tol="),
])
def test_bad_limits(kwargs, match):
    with pytest.raises(ValueError, match=match):
        log_partition(Ising2D(4), 0.4, method="smc", key=0, **kwargs)


def test_tol_for_unsupported_method_is_refused():
    with pytest.raises(ValueError, match="tol is not supported for method 'exact'"):
        accuracy.log_partition_to_tol(Ising2D(4), 0.4, "exact", key=0, tol=0.1)


def test_beta_zero_is_exact_reference():
    est = log_partition(Ising2D(4), 0.0, method="smc", key=0, tol=0.01)
    assert est.value == pytest.approx(16 * math.log(2)) and est.stderr == 0.0 and est.reliable


def test_exact_with_tol_is_exact():
    est = log_partition(Ising2D(4), 0.4, method="exact", tol=0.01)
    assert est.stderr == 0.0 and est.diagnostics["tol_reached"] is True
