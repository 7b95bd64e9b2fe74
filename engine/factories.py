"""Built-in models by name: the ONE model factory of the ``thermodl`` CLI and of declarative sweeps.

``MODELS`` is the parameter table of every built-in model; ``build`` validates a parameter dict against it and
builds the model (random couplings / patterns / data drawn from the disorder ``seed``, or read from .npz files),
returning a ``BuiltModel`` with a label and the options used; ``build_model`` returns just the model. Error
messages name parameters as sweep-config keys (``sk.n``) or, with ``flags=True``, as CLI flags (``--n``).

Each parameter is either

* **traced** — it only changes numbers (J and h of the Ising model, the disorder ``seed``, the prior width σ_w,
  the margin κ): models with different values have the same pytree structure and shapes, so a sweep stacks them
  (``models.stack_models``) and runs them in ONE compiled program; or
* **static** — sizes (N, L, P = α·N, widths), unit types, losses and data files: they change shapes or the
  program, so a sweep compiles once per distinct value (a *compile group*).

``model_signature`` (pytree structure with static fields, leaf shapes and dtypes) is what actually decides
whether two models share a program; the sweep checks that every group's models have one signature.

    >>> model = build_model("sk", {"n": 16, "seed": 3})
    >>> sorted(traced_params("ising2d"))
    ['J', 'h']
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .validate import check_choice, check_positive_float, check_positive_int

__all__ = ["Param", "MODELS", "BuiltModel", "model_names", "model_params", "traced_params", "resolve_model_params",
           "build", "build_model", "model_signature", "load_npz_arrays", "option_flag"]


class Param(NamedTuple):
    """One model parameter.

    Fields:
        traced: True when different values give models of identical structure and shapes (batched into one
            compiled program); False when a new value may change shapes or static configuration (recompiles).
        kind: ``"int"`` (positive size), ``"float"`` (finite), ``"positive"`` (finite, > 0), ``"seed"`` (int ≥ 0),
            ``"path"`` (a file; for mlp.data also a source name), ``"str"``, ``"int|path"`` (a count or a file),
            ``"widths"`` (hidden widths: an int or comma-separated ints, "" for none; stored as "16,16").
        doc: one line for help texts, with the default in [brackets].
    """

    traced: bool
    kind: str
    doc: str


_SEED = Param(True, "seed", "disorder seed: draws the couplings / patterns / data [0; CLI: --seed]")
_GARDNER = {
    "n": Param(False, "int", "input dimension N [15]"),
    "p": Param(False, "int", "patterns P (random ±1 patterns and labels, Gardner 1988) [round(α·N)]"),
    "alpha": Param(False, "positive", "load α = P/N (P = round(α·N): a shape, so static) [0.5]"),
    "data": Param(False, "path", ".npz file with X [P, N], y [P]"),
    "kappa": Param(True, "float", "margin κ: a pattern is an error when y·w·x/√N ≤ κ [0]"),
    "seed": _SEED,
}

MODELS: dict[str, dict[str, Param]] = {
    "ising2d": {
        "L": Param(False, "int", "rows of the L×M torus [8]"),
        "M": Param(False, "int", "columns [L]"),
        "J": Param(True, "float", "coupling J [1.0]"),
        "h": Param(True, "float", "external field h [0.0]"),
    },
    "sk": {
        "n": Param(False, "int", "spins, J_ij ~ N(0, 1/N) [12]"),
        "couplings": Param(False, "path", ".npz file with a symmetric J [N, N]"),
        "seed": _SEED,
    },
    "rbm": {
        "n_visible": Param(False, "int", "visible units of a random RBM, W, a, b ~ N(0, 1/n_visible) [8]"),
        "n_hidden": Param(False, "int", "hidden units [4]"),
        "units": Param(False, "str", "'binary' {0, 1} or 'spin' ±1 units [binary]"),
        "weights": Param(False, "path", ".npz file with W [nv, nh], a [nv], b [nh]"),
        "seed": _SEED,
    },
    "hopfield": {
        "n": Param(False, "int", "neurons [12]"),
        "patterns": Param(False, "int|path", "number P of random ±1 patterns [2], or an .npz file with xi [P, N]"),
        "seed": _SEED,
    },
    "perceptron": _GARDNER,  # binary ±1 weights
    "spherical_perceptron": _GARDNER,  # weights on the sphere |w|² = N
    "linear": {
        "n": Param(False, "int", "features of synthetic data X ~ N(0, 1), y = X w* + 0.1 noise [4]"),
        "p": Param(False, "int", "examples [16]"),
        "data": Param(False, "path", ".npz file with X [P, N], y [P]"),
        "sigma_w": Param(True, "positive", "prior std σ_w of the weights [1.0]"),
        "seed": _SEED,
    },
    "mlp": {
        "n": Param(False, "int", "inputs of the teacher–student data [10]"),
        "p": Param(False, "int", "training examples [20; digits: all ≈ 270 of the two classes]"),
        "data": Param(False, "path", "'teacher' (Gaussian inputs, labels of a random perceptron teacher), "
                                    "'digits' (sklearn 8×8 digits, two --classes) or an .npz file [teacher]"),
        "classes": Param(False, "str", "digits: the two classes 'a,b' (a → −1, b → +1) [0,1]"),
        "widths": Param(False, "widths", "hidden widths, e.g. 16,16 ('' = no hidden layer) [8]"),
        "activation": Param(False, "str", "tanh, relu, erf or linear [tanh]"),
        "loss": Param(False, "str", "squared or logistic [squared]"),
        "sigma_w": Param(True, "positive", "Gaussian prior σ_w (kernels σ_w²/fan_in, biases σ_w²) [1.0]"),
        "seed": _SEED,
    },
}
"""Parameter table of every built-in model (names as sweep-config keys; CLI flags: ``option_flag``)."""


class BuiltModel(NamedTuple):
    """A built model: the model, a one-line label, the options used (JSON-able), dim and log Z(0)."""

    model: Any
    label: str
    options: dict
    dim: int
    log_z0: float


def model_names() -> tuple[str, ...]:
    """Names of the built-in models."""
    return tuple(MODELS)


def model_params(name: str) -> dict[str, Param]:
    """The parameter table of model ``name`` (``ValueError`` for an unknown name)."""
    return dict(MODELS[check_choice("model", name, MODELS)])


def traced_params(name: str) -> frozenset[str]:
    """Parameters of ``name`` that only change numbers (never shapes): batched, not recompiled, in sweeps."""
    return frozenset(k for k, v in model_params(name).items() if v.traced)


def option_flag(key: str) -> str:
    """The CLI flag of parameter ``key``: ``n_visible`` → ``--n-visible``, ``seed`` → ``--disorder-seed``."""
    return "--disorder-seed" if key == "seed" else "--" + key.replace("_", "-")


def _namer(model: str, flags: bool) -> Callable[[str], str]:
    return option_flag if flags else (lambda key: f"{model}.{key}")


def _check_value(key: str, value: Any, kind: str, what: str) -> Any:
    if kind == "int":
        return check_positive_int(value, what)
    if kind == "seed":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{what} must be a non-negative integer seed, got {value!r}")
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
            raise ValueError(f"{what} must be finite, got {value!r}")
        return float(value)
    if kind == "positive":
        return check_positive_float(value, what)
    if kind == "path":
        if not isinstance(value, (str, os.PathLike)):
            raise ValueError(f"{what} must be a file path, got {value!r}")
        return os.fspath(value)
    if kind == "int|path":
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return check_positive_int(value, what)
        return _check_value(key, value, "path", what)
    if kind == "widths":
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return str(check_positive_int(value, what))
        if not isinstance(value, str):
            raise ValueError(f"{what} must be comma-separated positive integers, got {value!r}")
        try:
            return ",".join(str(check_positive_int(int(w), what)) for w in value.split(",") if w.strip())
        except ValueError:
            raise ValueError(f"{what} must be comma-separated positive integers, got {value!r}") from None
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {value!r}")
    return value


def resolve_model_params(name: str, params: Mapping[str, Any] | None = None, *, flags: bool = False) -> dict:
    """Validate the parameters of model ``name`` (names and values; absent ones keep their defaults).

    Args:
        name: one of ``model_names()``.
        params: {parameter: value}; None values are dropped.
        flags: name parameters in messages as CLI flags (``--n``) instead of config keys (``sk.n``).
    Returns:
        the validated parameters (plain Python values; paths as strings).
    Raises:
        ValueError: unknown model or parameter (listing the valid ones), non-positive size, non-finite number.
    """
    table, nm = model_params(name), _namer(name, flags)
    params = {k: v for k, v in (params or {}).items() if v is not None}
    unknown = sorted(set(params) - set(table))
    if unknown and flags:
        valid = ", ".join(option_flag(k) for k in table if k != "seed")
        raise ValueError(f"option {option_flag(unknown[0])} does not apply to model {name!r} (its options: {valid})")
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for model {name!r}; "
                         f"valid: {', '.join(table)}")
    return {k: _check_value(k, v, table[k].kind, nm(k)) for k, v in params.items()}


def build(name: str, params: Mapping[str, Any] | None = None, *, seed: int = 0, flags: bool = False) -> BuiltModel:
    """Build built-in model ``name`` from a parameter dict (see ``MODELS``; absent parameters take defaults).

    Models: ``ising2d`` (L×M torus; exact log Z by Kaufman 1949), ``sk`` (Sherrington & Kirkpatrick 1975),
    ``rbm`` (Smolensky 1986; Hinton 2002), ``hopfield`` (Hopfield 1982), ``perceptron`` / ``spherical_perceptron``
    (binary ±1 / spherical weights on Gardner's random patterns, Gardner 1988), ``linear`` (Bayesian linear
    regression, closed-form evidence, MacKay 1992), ``mlp`` (``models.weight_ensemble`` of ``models.MLP`` with a
    Gaussian prior; Seung, Sompolinsky & Tishby 1992; Neal 1996).

    Args:
        name: one of ``model_names()``.
        params: e.g. ``{"n": 16}``; a ``"seed"`` entry overrides ``seed``.
        seed: disorder seed drawing couplings / patterns / data (``jax.random.key(seed)``).
        flags: name parameters in messages as CLI flags instead of config keys.
    Returns:
        ``BuiltModel``; the same (name, params, seed) always give the same model.
    Raises:
        ValueError: bad name, parameters (one that does not apply, both of two exclusive ones) or data files.
    """
    p = resolve_model_params(name, params, flags=flags)
    seed = p.pop("seed", seed)
    return _BUILDERS[name](name, p, jax.random.key(seed), seed, _namer(name, flags))


def build_model(name: str, params: Mapping[str, Any] | None = None, **kwargs):
    """Just the model of ``build(name, {**params, **kwargs})`` (``seed`` among the parameters).

    Returns:
        the model (a pytree following ``models/base.py``).
    """
    return build(name, {**(params or {}), **kwargs}).model


def model_signature(model) -> tuple:
    """(pytree structure incl. static fields, leaf shapes and dtypes): models with equal signatures stack into
    one batch and share one compiled program."""
    leaves, treedef = jax.tree.flatten(model)
    return treedef, tuple((tuple(np.shape(x)), str(jnp.result_type(x))) for x in leaves)


# ------------------------------------------------------------------------------------------- data files
def load_npz_arrays(path: str | os.PathLike, keys: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """Named arrays from an .npz file, each checked finite; every failure is a one-line ``ValueError``
    starting with ``what`` (the flag or config key that gave the path)."""
    import zipfile

    from .validate import check_finite_array

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what}: file not found: {path}")
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as err:  # not an npz / corrupt zip / pickle
        raise ValueError(f"{what}: cannot read {path} as .npz ({' '.join(str(err).split())})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{what}: {path} is a single .npy array, not an .npz archive of named arrays")
    try:
        with f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise ValueError(f"{what}: {path} has no array {missing[0]!r} (it has: {', '.join(sorted(f.files))})")
            arrays = {k: np.asarray(f[k]) for k in keys}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        if str(err).startswith(what):  # our own message (missing key)
            raise
        raise ValueError(f"{what}: cannot read {path} as .npz ({' '.join(str(err).split())})") from None
    for k, v in arrays.items():
        check_finite_array(v, f"{path.name}:{k}")
    return arrays


def _xy(path, what: str):
    """(X [P, N], y [P] float32) from an .npz data file."""
    from .validate import check_shapes

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
# Each builder: (name, validated params without seed, key, seed, namer) -> BuiltModel.
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

    from .validate import check_shapes

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
