"""The model factory shared by the CLI and sweeps: every model builds, traced vs static parameters, messages naming
config keys or CLI flags, the spherical perceptron on Gardner data, and the MLP weight ensemble checked against
Bayesian linear regression (energy, prior, exact log Z and <E> through AIS and a sweep)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from thermodl.engine import catalog, sweep
from thermodl.models.data import digits, gardner_patterns
from thermodl.models.linear import linear_evidence
from thermodl.models.perceptron import BinaryPerceptron, SphericalPerceptron


def _same_leaves(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# ------------------------------------------------------------------------------------------ table & defaults
@pytest.mark.parametrize("name, dim, log_z0", [
    ("ising2d", 64, 64 * math.log(2)), ("sk", 12, 12 * math.log(2)), ("rbm", None, None), ("hopfield", 12, None),
    ("perceptron", 15, 15 * math.log(2)), ("spherical_perceptron", 15, 0.0), ("linear", 4, 0.0),
    ("mlp", 10 * 8 + 8 + 8 + 1, 0.0),
])
def test_every_model_builds_with_its_defaults(name, dim, log_z0):
    built = catalog.build(name)
    assert built.dim == built.model.dim and built.label
    if dim is not None:
        assert built.dim == dim
    if log_z0 is not None:
        assert built.log_z0 == pytest.approx(log_z0)
    assert math.isfinite(built.log_z0)
    w = built.model.sample_reference(jax.random.key(0))
    assert w.shape == (built.dim,) and np.isfinite(float(built.model.energy(w)))
    assert set(catalog.traced_params(name)) <= set(catalog.MODELS[name])
    assert _same_leaves(built.model, catalog.build_model(name))  # deterministic


@pytest.mark.parametrize("name, base, traced, static", [
    ("spherical_perceptron", {"n": 6, "p": 4}, {"kappa": 0.5, "disorder_seed": 3}, {"n": 7}),
    ("perceptron", {"n": 6, "alpha": 1.0}, {"kappa": -0.2, "disorder_seed": 1}, {"alpha": 2.0}),
    ("linear", {"n": 3, "p": 8}, {"sigma_w": 2.0, "disorder_seed": 1}, {"p": 9}),
    ("mlp", {"n": 5, "p": 8, "widths": "4"}, {"sigma_w": 0.5, "disorder_seed": 2}, {"widths": "4,4"}),
    ("mlp", {"n": 5, "p": 8, "widths": ""}, {"disorder_seed": 9}, {"loss": "logistic"}),
])
def test_traced_parameters_keep_the_signature_static_ones_change_it(name, base, traced, static):
    sig = catalog.model_signature
    a, b = catalog.build_model(name, base), catalog.build_model(name, {**base, **traced})
    assert sig(a) == sig(b) and not _same_leaves(a, b)
    assert set(traced) <= catalog.traced_params(name)
    assert sig(a) != sig(catalog.build_model(name, {**base, **static}))
    assert not set(static) & catalog.traced_params(name)


def test_messages_name_config_keys_or_cli_flags(tmp_path):
    cases = [
        ("sk", {"n": 0}, "sk.n must be a positive integer, got 0", "--n must be a positive integer, got 0"),
        ("sk", {"L": 4}, "unknown parameter(s) 'L' for model 'sk'; valid: n, couplings, disorder_seed",
         "option --L does not apply to model 'sk' (its options: --n, --couplings)"),
        ("perceptron", {"p": 3, "alpha": 0.5}, "give either perceptron.p or perceptron.alpha, not both",
         "give either --p or --alpha, not both"),
        ("ising2d", {"J": float("nan")}, "ising2d.J must be finite, got nan", "--J must be finite, got nan"),
        ("linear", {"sigma_w": 0.0}, "linear.sigma_w must be finite and > 0", "--sigma-w must be finite and > 0"),
        ("rbm", {"n_visible": 2.5}, "rbm.n_visible must be a positive integer", "--n-visible must be a positive"),
        ("perceptron", {"data": tmp_path / "none.npz"}, "perceptron.data: file not found", "--data: file not found"),
        ("mlp", {"classes": "3,8"}, "mlp.classes applies only to mlp.data digits",
         "--classes applies only to --data digits"),
        ("mlp", {"data": "digits", "classes": "3,3"}, "mlp.classes must be two different digits",
         "--classes must be two different digits"),
        ("mlp", {"activation": "gelu"}, "unknown activation 'gelu'", "unknown activation 'gelu'"),
    ]
    for name, params, config_msg, flag_msg in cases:
        with pytest.raises(ValueError, match=None) as err:
            catalog.build(name, params)
        assert config_msg in str(err.value), (config_msg, str(err.value))
        with pytest.raises(ValueError) as err:
            catalog.build(name, params, flags=True)
        assert flag_msg in str(err.value), (flag_msg, str(err.value))
    with pytest.raises(ValueError, match="unknown model 'potts'"):
        catalog.build("potts")


# ------------------------------------------------------------------------------------------ perceptrons
@pytest.mark.parametrize("name, cls", [("spherical_perceptron", SphericalPerceptron),
                                       ("perceptron", BinaryPerceptron)])
def test_perceptrons_are_built_on_gardner_patterns(name, cls):
    built = catalog.build(name, {"n": 9, "alpha": 0.5, "kappa": 0.3, "disorder_seed": 4})
    model = built.model
    X, y = gardner_patterns(jax.random.key(4), 4, 9)  # P = round(0.5 · 9) = 4
    assert type(model) is cls and built.options == {"n": 9, "p": 4, "kappa": 0.3, "disorder_seed": 4}
    np.testing.assert_array_equal(model.X, X)
    np.testing.assert_array_equal(model.y, y)
    w = np.asarray(model.sample_reference(jax.random.key(1)))
    errors = np.sum(np.asarray(y) * (np.asarray(X) @ w) / 3.0 <= 0.3)  # Θ(κ − Δ), Δ = y w·x/√N
    assert float(model.energy(jnp.asarray(w))) == errors
    if name == "spherical_perceptron":
        assert model.manifold == "sphere" and np.dot(w, w) == pytest.approx(9, rel=1e-5)


def test_perceptron_from_data_file(tmp_path):
    X = np.sign(np.random.default_rng(0).standard_normal((5, 7)))
    y = np.array([1, -1, 1, 1, -1])
    np.savez(tmp_path / "d.npz", X=X, y=y)
    model = catalog.build_model("spherical_perceptron", {"data": tmp_path / "d.npz", "kappa": 0.1})
    np.testing.assert_array_equal(model.X, X)
    np.testing.assert_array_equal(model.y, y)
    with pytest.raises(ValueError, match="give either spherical_perceptron.data or spherical_perceptron.n"):
        catalog.build("spherical_perceptron", {"data": tmp_path / "d.npz", "n": 7})


# ------------------------------------------------------------------------------------------ MLP
def _linear_mlp(sigma_w=1.5, seed=2):
    return catalog.build("mlp", {"widths": "", "activation": "linear", "n": 4, "p": 12, "sigma_w": sigma_w,
                                   "disorder_seed": seed})


def _kernel_bias(model, w):
    params = {jax.tree_util.keystr(k): np.asarray(v, np.float64)
              for k, v in jax.tree_util.tree_flatten_with_path(model.unravel(w))[0]}
    (kernel,) = [v for k, v in params.items() if "kernel" in k]
    (bias,) = [v for k, v in params.items() if "bias" in k]
    return kernel.reshape(-1), float(bias.reshape(()))


def test_mlp_without_hidden_layer_is_bayesian_linear_regression():
    built = _linear_mlp()
    model = built.model
    assert built.dim == 5 and built.options["disorder_seed"] == 2 and model.manifold == "euclidean"
    X, y = np.asarray(model.X, np.float64), np.asarray(model.y, np.float64).reshape(-1)
    assert set(np.unique(y)) <= {-1.0, 1.0}  # labels of the perceptron teacher
    for i in range(3):
        w = jax.random.normal(jax.random.key(i), (5,))
        k, b = _kernel_bias(model, w)
        r = X @ k + b - y
        assert float(model.energy(w)) == pytest.approx(0.5 * r @ r, rel=1e-5)
        # Gaussian prior with fan-in scaling: kernel N(0, σ²/n), bias N(0, σ²)
        log_prior = stats.norm.logpdf(k, scale=1.5 / 2.0).sum() + stats.norm.logpdf(b, scale=1.5)
        assert float(model.log_prior(w)) == pytest.approx(log_prior, rel=1e-5)


def test_mlp_log_z_by_ais_matches_linear_evidence():
    from thermodl.engine.api import log_partition

    model = _linear_mlp().model
    X, y = np.asarray(model.X, np.float64), np.asarray(model.y, np.float64).reshape(-1)
    beta = 1.0
    # k = u/√n with u ~ N(0, σ²): Z equals the evidence of the design [X/√n, 1] with prior N(0, σ² I)
    exact = float(linear_evidence(X / 2.0, y, beta, 1.5, bias=True))
    est = log_partition(model, beta, method="ais", key=jax.random.key(0), n_chains=64, n_temperatures=200)
    assert 0 < est.stderr < 0.3, est
    assert abs(est.z_score(exact)) < 4, (est.value, est.stderr, exact)


def test_mlp_options_losses_and_digits(tmp_path):
    logistic = catalog.build_model("mlp", {"n": 5, "p": 8, "widths": "3", "loss": "logistic", "disorder_seed": 1})
    w = jax.random.normal(jax.random.key(0), (logistic.dim,))
    f = np.asarray(logistic.predict(w), np.float64).reshape(-1)
    expected = np.logaddexp(0.0, -np.asarray(logistic.y, np.float64) * f).sum()  # softplus(−y f)
    assert float(logistic.energy(w)) == pytest.approx(expected, rel=1e-5)
    assert logistic.dim == 5 * 3 + 3 + 3 + 1

    built = catalog.build("mlp", {"data": "digits", "classes": "3, 8", "p": 40, "widths": "2"})
    reference = digits(classes=(3, 8), test_fraction=0.0, n_train=40, seed=0)
    np.testing.assert_array_equal(built.model.X, reference.X)
    assert built.model.X.shape == (40, 64) and built.dim == 64 * 2 + 2 + 2 + 1
    assert set(np.unique(np.asarray(built.model.y))) == {-1.0, 1.0}
    assert built.options["classes"] == "3,8" and built.options["p"] == 40

    np.savez(tmp_path / "xy.npz", X=np.asarray(reference.X), y=np.asarray(reference.y))
    from_file = catalog.build_model("mlp", {"data": tmp_path / "xy.npz", "widths": "2"})
    np.testing.assert_array_equal(from_file.X, reference.X)
    with pytest.raises(ValueError, match="mlp.p does not apply to a data file"):
        catalog.build("mlp", {"data": tmp_path / "xy.npz", "p": 3})
    with pytest.raises(ValueError, match="unknown mlp.data 'mnist'"):
        catalog.build("mlp", {"data": "mnist"})
    assert catalog.resolve_model_params("mlp", {"widths": 16})["widths"] == "16"


# ------------------------------------------------------------------------------------------ sweeps
def test_sweep_roles_of_the_new_models():
    plan = sweep.plan_sweep({"model": {"name": "spherical_perceptron", "n": [8, 10], "kappa": [0.0, 0.5]},
                             "sweep": {"beta": [1.0, 2.0], "disorder_seed": [0, 1]}})
    assert {a.name: a.role for a in plan.axes} == {"n": "static", "kappa": "model", "beta": "point",
                                                   "disorder_seed": "model"}
    assert len(plan.groups) == 2
    plan = sweep.plan_sweep({"model": {"name": "mlp", "widths": ["4", "4,4"], "sigma_w": [0.5, 1.0],
                                       "loss": ["squared", "logistic"]}, "sweep": {"beta": 1.0}})
    roles = {a.name: a.role for a in plan.axes}
    assert roles == {"widths": "static", "sigma_w": "model", "loss": "static"} and len(plan.groups) == 4


@pytest.mark.slow
def test_sweep_of_stacked_mlps_matches_the_exact_mean_energy(tmp_path):
    """σ_w × disorder seed stacked into one program (HMC); <E>_β = −∂ log Z/∂β of the linear evidence."""
    cfg = {"model": {"name": "mlp", "widths": "", "activation": "linear", "n": 4, "p": 12, "sigma_w": [0.5, 1.5]},
           "sweep": {"beta": [1.0], "disorder_seed": [0, 1]},
           "estimator": {"n_chains": 32, "n_steps": 400, "n_warmup": 200}}
    ds = sweep.run_sweep(cfg, out=tmp_path / "mlp.nc", progress=False)
    for sigma in (0.5, 1.5):
        for seed in (0, 1):
            model = _linear_mlp(sigma, seed).model
            X, y = np.asarray(model.X, np.float64) / 2.0, np.asarray(model.y, np.float64).reshape(-1)
            with jax.enable_x64(True):
                mean_e = -float(jax.grad(lambda b: linear_evidence(X, y, b, sigma, bias=True))(jnp.float64(1.0)))
            point = ds.sel(sigma_w=sigma, disorder_seed=seed, beta=1.0)
            z = (float(point["energy"]) - mean_e) / float(point["energy_stderr"])
            assert float(point["energy_stderr"]) > 0 and abs(z) < 4, (sigma, seed, z)
    assert ds.attrs["n_compile_groups"] == 1
