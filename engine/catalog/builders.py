"""Builders of the built-in models: ``build(name, params)`` → ``BuiltModel`` (the ONE model factory of the
``thermodl`` CLI and of declarative sweeps).

Parameters are validated against ``engine.catalog.params.MODELS``; random couplings / patterns / data are drawn
from ``jax.random.key(disorder_seed)`` (or read from .npz files). The disorder seed is the only randomness of a
model: the Monte Carlo seed of a run never reaches a builder.

    >>> model = build_model("sk", {"n": 16, "disorder_seed": 3})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..io import load_npz_arrays
from ..validate import check_choice, check_positive_int
from .params import DISORDER_SEED, BuiltModel, _check_value, _namer, resolve_model_params

__all__ = ["build", "build_model"]


def build(name: str, params: Mapping[str, Any] | None = None, *, disorder_seed: int = 0,
          flags: bool = False) -> BuiltModel:
    """Build built-in model ``name`` from a parameter dict (see ``MODELS``; absent parameters take defaults).

    Models: ``ising2d`` (L×M torus; exact log Z by Kaufman 1949), ``sk`` (Sherrington & Kirkpatrick 1975),
    ``rbm`` (Smolensky 1986; Hinton 2002), ``hopfield`` (Hopfield 1982), ``perceptron`` / ``spherical_perceptron``
    (binary ±1 / spherical weights on Gardner's random patterns, Gardner 1988), ``linear`` (Bayesian linear
    regression, closed-form evidence, MacKay 1992), ``mlp`` (``models.weight_ensemble`` of ``models.MLP`` with a
    Gaussian prior; Seung, Sompolinsky & Tishby 1992; Neal 1996).

    Args:
        name: one of ``model_names()``.
        params: e.g. ``{"n": 16}``; a ``"disorder_seed"`` entry overrides ``disorder_seed``.
        disorder_seed: seed drawing couplings / patterns / data (``jax.random.key(disorder_seed)``).
        flags: name parameters in messages as CLI flags instead of config keys.
    Returns:
        ``BuiltModel``; the same (name, params, disorder_seed) always give the same model.
    Raises:
        ValueError: bad name, parameters (one that does not apply, both of two exclusive ones) or data files.
    """
    p = resolve_model_params(name, params, flags=flags)
    nm = _namer(name, flags)
    seed = p.pop(DISORDER_SEED) if DISORDER_SEED in p else _check_value(DISORDER_SEED, disorder_seed, "seed",
                                                                         nm(DISORDER_SEED))
    return _BUILDERS[name](name, p, jax.random.key(seed), seed, nm)


def build_model(name: str, params: Mapping[str, Any] | None = None, **kwargs):
    """Just the model of ``build(name, {**params, **kwargs})`` (``disorder_seed`` among the parameters).

    Returns:
        the model (a pytree following ``models/base.py``).
    """
    return build(name, {**(params or {}), **kwargs}).model


def _xy(path, what: str):
    """(X [P, N], y [P] float32) from an .npz data file."""
    from ..validate import check_shapes

    arr = load_npz_arrays(path, ("X", "y"), what)
    X, y = arr["X"], np.asarray(arr["y"], np.float32)
    y = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    check_shapes({"X": X, "y": y}, {"X": ("P", "N"), "y": ("P",)})
    return X, y


def _only_one(o: dict, nm, first: str, others: tuple[str, ...], why: str = "") -> None:
    clash = [k for k in others if k in o]
    if first in o and clash:
        raise ValueError(f"give either {nm(first)} or {nm(clash[0])}, not both{why}")


# ------------------------------------------------------------------------------------------- builders
# Each builder: (name, validated params without the disorder seed, key, disorder seed, namer) -> BuiltModel.
def _ising2d(name, o, key, seed, nm):
    from thermodl.models.ising import Ising2D

    L = o.get("L", 8)
    M, J, h = o.get("M", L), o.get("J", 1.0), o.get("h", 0.0)
    model = Ising2D(L, M, J=J, h=h)
    return _done(model, f"Ising2D {L}×{M} (J={J:g}, h={h:g})", {"L": L, "M": M, "J": J, "h": h})


def _sk(name, o, key, seed, nm):
    from thermodl.models.sk import SK

    _only_one(o, nm, "n", ("couplings",))
    if "couplings" in o:
        J = load_npz_arrays(o["couplings"], ("J",), nm("couplings"))["J"]
        if J.ndim != 2 or J.shape[0] != J.shape[1]:
            raise ValueError(f"{nm('couplings')}: J must be square [N, N], got shape {J.shape}")
        model, used = SK(jnp.asarray(J, jnp.float32)), {"couplings": o["couplings"]}
    else:
        model = SK.random(key, o.get("n", 12))
        used = {"n": model.dim, "disorder_seed": seed}
    return _done(model, f"SK N={model.dim}", used)


def _rbm(name, o, key, seed, nm):
    from thermodl.models.rbm import RBM

    from ..validate import check_shapes

    units = check_choice("units", o.get("units", "binary"), ("binary", "spin"))
    _only_one(o, nm, "weights", ("n_visible", "n_hidden"))
    if "weights" in o:
        arr = load_npz_arrays(o["weights"], ("W", "a", "b"), nm("weights"))
        if arr["W"].ndim != 2:
            raise ValueError(f"{nm('weights')}: W must be 2-d [n_visible, n_hidden], got shape {arr['W'].shape}")
        check_shapes(arr, {"W": ("n_visible", "n_hidden"), "a": ("n_visible",), "b": ("n_hidden",)})
        model = RBM(*(jnp.asarray(arr[k], jnp.float32) for k in "Wab"), units=units)
        used = {"weights": o["weights"], "units": units}
    else:
        nv, nh = o.get("n_visible", 8), o.get("n_hidden", 4)
        model = RBM.random(key, nv, nh, scale=1.0 / math.sqrt(nv), units=units)
        used = {"n_visible": nv, "n_hidden": nh, "units": units, "disorder_seed": seed}
    return _done(model, f"RBM {model.W.shape[0]}×{model.W.shape[1]} ({units})", used)


def _hopfield(name, o, key, seed, nm):
    from thermodl.models.hopfield import Hopfield

    pat = o.get("patterns", 2)
    if str(pat).strip().lstrip("+").isdigit():  # a count (the CLI passes every --patterns as a string)
        P, N = check_positive_int(int(pat), nm("patterns")), o.get("n", 12)
        model, used = Hopfield.random(key, P, N), {"n": N, "patterns": P, "disorder_seed": seed}
    else:
        if "n" in o:
            raise ValueError(f"{nm('n')} does not apply when {nm('patterns')} is a file (N comes from the file)")
        xi = load_npz_arrays(pat, ("xi",), nm("patterns"))["xi"]
        if xi.ndim != 2:
            raise ValueError(f"{nm('patterns')}: xi must be 2-d [P, N], got shape {xi.shape}")
        model, used = Hopfield(jnp.asarray(xi, jnp.float32)), {"patterns": pat}
    return _done(model, f"Hopfield N={model.dim}", used)


def _perceptron(name, o, key, seed, nm):
    from thermodl.models.perceptron import BinaryPerceptron, SphericalPerceptron

    kappa = o.get("kappa", 0.0)
    _only_one(o, nm, "data", ("n", "p", "alpha"), " (the data file gives the patterns)")
    _only_one(o, nm, "p", ("alpha",))
    if "data" in o:
        X, y = _xy(o["data"], nm("data"))
        used = {"data": o["data"], "kappa": kappa}
    else:
        from thermodl.models.data import gardner_patterns

        N = o.get("n", 15)
        P = o["p"] if "p" in o else max(1, round(o.get("alpha", 0.5) * N))
        X, y = gardner_patterns(key, P, N)[:2]
        used = {"n": N, "p": P, "kappa": kappa, "disorder_seed": seed}
    cls = SphericalPerceptron if name == "spherical_perceptron" else BinaryPerceptron
    model = cls(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32), kappa=kappa)
    what = "spherical" if name == "spherical_perceptron" else "binary"
    return _done(model, f"{what} perceptron N={model.dim}, P={np.shape(X)[0]}, κ={kappa:g}", used)


def _linear(name, o, key, seed, nm):
    from thermodl.models.linear import BayesianLinear

    sigma = o.get("sigma_w", 1.0)
    _only_one(o, nm, "data", ("n", "p"), " (the data file gives the regression data)")
    if "data" in o:
        X, y = _xy(o["data"], nm("data"))
        used = {"data": o["data"], "sigma_w": sigma}
    else:
        N, P = o.get("n", 4), o.get("p", 16)
        kx, kw, ke = jax.random.split(key, 3)
        X = jax.random.normal(kx, (P, N))
        y = X @ jax.random.normal(kw, (N,)) + 0.1 * jax.random.normal(ke, (P,))
        used = {"n": N, "p": P, "sigma_w": sigma, "disorder_seed": seed}
    model = BayesianLinear(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32), sigma_w=sigma)
    return _done(model, f"Bayesian linear regression d={np.shape(X)[1]}, P={np.shape(X)[0]}", used)


def _mlp(name, o, key, seed, nm):
    from flax import nnx

    from thermodl.models import data as datasets
    from thermodl.models.priors import gaussian
    from thermodl.models.topologies import MLP
    from thermodl.models.weights import weight_ensemble

    loss = check_choice("loss", o.get("loss", "squared"), ("squared", "logistic"))
    activation = check_choice("activation", o.get("activation", "tanh"), ("tanh", "relu", "erf", "linear"))
    widths_s, sigma, source = o.get("widths", "8"), o.get("sigma_w", 1.0), o.get("data", "teacher")
    widths = tuple(int(w) for w in widths_s.split(",") if w)
    used = {"data": source, "widths": widths_s, "activation": activation, "loss": loss, "sigma_w": sigma}
    k_data, k_init = jax.random.split(key)
    if "classes" in o and source != "digits":
        raise ValueError(f"{nm('classes')} applies only to {nm('data')} digits")
    if source == "teacher":
        N, P = o.get("n", 10), o.get("p", 20)
        X, y = datasets.teacher_student(k_data, P, N, P_test=0)[:2]
        used.update(n=N, p=P, disorder_seed=seed)
    else:
        if "n" in o:
            raise ValueError(f"{nm('n')} applies only to {nm('data')} teacher (N comes from the data)")
        if source == "digits":
            classes = tuple(c.strip() for c in o.get("classes", "0,1").split(","))
            if len(classes) != 2 or not all(c.isdigit() and int(c) <= 9 for c in classes) or classes[0] == classes[1]:
                raise ValueError(f"{nm('classes')} must be two different digits 'a,b', got {o['classes']!r}")
            X, y = datasets.digits(classes=tuple(map(int, classes)), test_fraction=0.0, n_train=o.get("p"),
                                   seed=seed)[:2]
            used.update(classes=",".join(classes), p=int(X.shape[0]), disorder_seed=seed)
        else:
            if not source.endswith(".npz") and not Path(source).is_file():
                raise ValueError(f"unknown {nm('data')} {source!r}; choose one of: teacher, digits, or an .npz file")
            X, y = _xy(source, nm("data"))
            if "p" in o:
                raise ValueError(f"{nm('p')} does not apply to a data file (P comes from the file)")
    net = MLP(int(np.shape(X)[1]), widths, 1, activation, rngs=nnx.Rngs(params=k_init))
    model = weight_ensemble(net, jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32), loss=loss,
                            prior=gaussian(sigma))
    arch = "→".join(str(s) for s in (np.shape(X)[1], *widths, 1))
    return _done(model, f"MLP {arch} ({activation}) weight ensemble, P={np.shape(X)[0]}, {loss} loss, "
                        f"σ_w={sigma:g}", used)


def _done(model, label: str, used: dict) -> BuiltModel:
    return BuiltModel(model, label, used, int(model.dim), float(model.log_reference_partition()))


_BUILDERS = {"ising2d": _ising2d, "sk": _sk, "rbm": _rbm, "hopfield": _hopfield, "perceptron": _perceptron,
             "spherical_perceptron": _perceptron, "linear": _linear, "mlp": _mlp}
