"""The parameter table of the built-in models (``MODELS``), its validation, and model signatures.

``MODELS`` lists, per built-in model, every parameter with its kind, whether it is traced, and a one-line doc;
``resolve_model_params`` validates a parameter dict against it (``engine.catalog.builders.build`` then builds the
model). Error messages name parameters as sweep-config keys (``sk.n``) or, with ``flags=True``, as CLI flags
(``--n``): a parameter ``n_visible`` is the flag ``--n-visible`` and the disorder seed ``disorder_seed`` is
``--disorder-seed``.

Each parameter is either

* **traced** — it only changes numbers (J and h of the Ising model, the ``disorder_seed``, the prior width σ_w,
  the margin κ): models with different values have the same pytree structure and shapes, so a sweep stacks them
  (``models.stack_models``) and runs them in ONE compiled program; or
* **static** — sizes (N, L, P = α·N, widths), unit types, losses and data files: they change shapes or the
  program, so a sweep compiles once per distinct value (a *compile group*).

``model_signature`` (pytree structure with static fields, leaf shapes and dtypes) is what actually decides
whether two models share a program; the sweep checks that every group's models have one signature.

    >>> sorted(traced_params("ising2d"))
    ['J', 'h']
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..validate import check_choice, check_positive_float, check_positive_int

__all__ = ["Param", "MODELS", "BuiltModel", "DISORDER_SEED", "model_names", "model_params", "traced_params",
           "resolve_model_params", "model_signature", "option_flag"]


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


DISORDER_SEED = "disorder_seed"
"""The parameter name of the disorder seed (couplings, patterns, data); never the Monte Carlo seed."""
_SEED = Param(True, "seed", "seed of the disorder: draws the couplings / patterns / data [0]")
_GARDNER = {
    "n": Param(False, "int", "input dimension N [15]"),
    "p": Param(False, "int", "patterns P (random ±1 patterns and labels, Gardner 1988) [round(α·N)]"),
    "alpha": Param(False, "positive", "load α = P/N (P = round(α·N): a shape, so static) [0.5]"),
    "data": Param(False, "path", ".npz file with X [P, N], y [P]"),
    "kappa": Param(True, "float", "margin κ: a pattern is an error when y·w·x/√N ≤ κ [0]"),
    DISORDER_SEED: _SEED,
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
        DISORDER_SEED: _SEED,
    },
    "rbm": {
        "n_visible": Param(False, "int", "visible units of a random RBM, W, a, b ~ N(0, 1/n_visible) [8]"),
        "n_hidden": Param(False, "int", "hidden units [4]"),
        "units": Param(False, "str", "'binary' {0, 1} or 'spin' ±1 units [binary]"),
        "weights": Param(False, "path", ".npz file with W [nv, nh], a [nv], b [nh]"),
        DISORDER_SEED: _SEED,
    },
    "hopfield": {
        "n": Param(False, "int", "neurons [12]"),
        "patterns": Param(False, "int|path", "number P of random ±1 patterns [2], or an .npz file with xi [P, N]"),
        DISORDER_SEED: _SEED,
    },
    "perceptron": _GARDNER,  # binary ±1 weights
    "spherical_perceptron": _GARDNER,  # weights on the sphere |w|² = N
    "linear": {
        "n": Param(False, "int", "features of synthetic data X ~ N(0, 1), y = X w* + 0.1 noise [4]"),
        "p": Param(False, "int", "examples [16]"),
        "data": Param(False, "path", ".npz file with X [P, N], y [P]"),
        "sigma_w": Param(True, "positive", "prior std σ_w of the weights [1.0]"),
        DISORDER_SEED: _SEED,
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
        DISORDER_SEED: _SEED,
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
    """The CLI flag of parameter ``key``: ``n_visible`` → ``--n-visible``, ``disorder_seed`` → ``--disorder-seed``."""
    return "--" + key.replace("_", "-")


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
    if "seed" in params:
        raise ValueError(f"{'--seed' if flags else repr('seed')} is not a model parameter: the disorder seed is "
                         f"{option_flag(DISORDER_SEED) if flags else repr(DISORDER_SEED)} (the Monte Carlo seed is "
                         "separate and never changes the model)")
    unknown = sorted(set(params) - set(table))
    if unknown and flags:
        valid = ", ".join(option_flag(k) for k in table if k != DISORDER_SEED)
        raise ValueError(f"option {option_flag(unknown[0])} does not apply to model {name!r} (its options: {valid})")
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for model {name!r}; "
                         f"valid: {', '.join(table)}")
    return {k: _check_value(k, v, table[k].kind, nm(k)) for k, v in params.items()}


def model_signature(model) -> tuple:
    """(pytree structure incl. static fields, leaf shapes and dtypes): models with equal signatures stack into
    one batch and share one compiled program."""
    leaves, treedef = jax.tree.flatten(model)
    return treedef, tuple((tuple(np.shape(x)), str(jnp.result_type(x))) for x in leaves)
