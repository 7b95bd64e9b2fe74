"""Models by name for declarative sweeps: which parameters are traced (batched) and which are static.

Building is delegated to the CLI's builder, ``thermodl.engine.cli.build_model`` (one model factory for the
whole package); this module adds what a sweep needs on top of it: the parameter table of every built-in model,
validation of parameter names and values with messages that name the config key, and the split of parameters
into

* **traced** — they only change numbers (J and h of the Ising model, the disorder ``seed`` that draws the
  couplings/patterns/data, the prior width σ_w): models with different values have the same pytree structure
  and shapes, so a sweep stacks them (``models.stack_models``) and runs them in ONE compiled program;
* **static** — sizes (N, L, P = α·N), unit types and data files: they change shapes, so a sweep compiles once
  per distinct value (a *compile group*).

``model_signature`` (pytree structure with static fields, leaf shapes and dtypes) is what actually decides
whether two models share a program; the sweep checks that every group's models have one signature.

    >>> model = build_model("sk", {"n": 16, "seed": 3})
    >>> sorted(traced_params("ising2d"))
    ['J', 'h']
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .validate import check_choice, check_positive_int

__all__ = [
    "Param",
    "MODELS",
    "model_names",
    "model_params",
    "traced_params",
    "resolve_model_params",
    "build_model",
    "model_signature",
]


class Param(NamedTuple):
    """One model parameter.

    Fields:
        traced: True when different values give models of identical structure and shapes (batched into one
            compiled program); False when a new value may change shapes or static configuration (recompiles).
        kind: ``"int"`` (positive size), ``"float"`` (finite), ``"seed"`` (int ≥ 0), ``"path"`` (.npz file),
            ``"str"``, or ``"int|path"`` (a count or a file).
        doc: one line for help texts; the default is the CLI's (``thermodl logz --help``).
    """

    traced: bool
    kind: str
    doc: str


_SEED = Param(True, "seed", "disorder seed: draws the couplings / patterns / data")

MODELS: dict[str, dict[str, Param]] = {
    "ising2d": {
        "L": Param(False, "int", "rows of the L×M torus"),
        "M": Param(False, "int", "columns (default L)"),
        "J": Param(True, "float", "coupling J"),
        "h": Param(True, "float", "external field h"),
    },
    "sk": {
        "n": Param(False, "int", "spins (J_ij ~ N(0, 1/N))"),
        "couplings": Param(False, "path", ".npz file with J [N, N]"),
        "seed": _SEED,
    },
    "rbm": {
        "n_visible": Param(False, "int", "visible units (random W ~ N(0, 1/n_visible))"),
        "n_hidden": Param(False, "int", "hidden units"),
        "units": Param(False, "str", "'binary' {0,1} or 'spin' ±1"),
        "weights": Param(False, "path", ".npz file with W, a, b"),
        "seed": _SEED,
    },
    "hopfield": {
        "n": Param(False, "int", "neurons"),
        "patterns": Param(False, "int|path", "number P of random ±1 patterns, or an .npz file with xi [P, N]"),
        "seed": _SEED,
    },
    "perceptron": {
        "n": Param(False, "int", "input dimension N (binary ±1 weights, Gardner data)"),
        "p": Param(False, "int", "patterns P"),
        "alpha": Param(False, "float", "load α = P/N (P = round(α·N): a shape, so static)"),
        "data": Param(False, "path", ".npz file with X [P, N], y [P]"),
        "seed": _SEED,
    },
    "linear": {
        "n": Param(False, "int", "features"),
        "p": Param(False, "int", "examples"),
        "data": Param(False, "path", ".npz file with X [P, N], y [P]"),
        "sigma_w": Param(True, "float", "prior std σ_w of the weights"),
        "seed": _SEED,
    },
}
"""Parameter table of every built-in model (names as in the CLI, ``--n-visible`` ↔ ``n_visible``)."""


def model_names() -> tuple[str, ...]:
    """Names of the built-in models."""
    return tuple(MODELS)


def model_params(name: str) -> dict[str, Param]:
    """The parameter table of model ``name`` (``ValueError`` for an unknown name)."""
    return dict(MODELS[check_choice("model", name, MODELS)])


def traced_params(name: str) -> frozenset[str]:
    """Parameters of ``name`` that only change numbers (never shapes): batched, not recompiled, in sweeps."""
    return frozenset(k for k, v in model_params(name).items() if v.traced)


def _check_value(model: str, key: str, value: Any, kind: str) -> Any:
    what = f"{model}.{key}"
    if kind == "int":
        return check_positive_int(value, what)
    if kind == "seed":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{what} must be a non-negative integer seed, got {value!r}")
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
            raise ValueError(f"{what} must be a finite number, got {value!r}")
        if key == "alpha" and value <= 0:
            raise ValueError(f"{what} must be > 0, got {value!r}")
        return float(value)
    if kind == "path":
        if not isinstance(value, (str, os.PathLike)):
            raise ValueError(f"{what} must be a file path, got {value!r}")
        return os.fspath(value)
    if kind == "int|path":
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return check_positive_int(value, what)
        return _check_value(model, key, value, "path")
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {value!r}")
    return value


def resolve_model_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate the parameters of model ``name`` (names and values; absent ones keep the CLI defaults).

    Returns:
        the validated parameters (plain Python values).
    Raises:
        ValueError: unknown model or parameter (listing the valid ones), non-positive size, non-finite number.
    """
    table = model_params(name)
    params = dict(params or {})
    unknown = sorted(set(params) - set(table))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for model {name!r}; "
                         f"valid: {', '.join(table)}")
    return {k: _check_value(name, k, v, table[k].kind) for k, v in params.items()}


def build_model(name: str, params: Mapping[str, Any] | None = None, **kwargs):
    """Build built-in model ``name`` from a parameter dict (and/or keyword arguments).

    Args:
        name: one of ``model_names()``.
        params: e.g. ``{"n": 16, "seed": 3}``; see ``MODELS`` (absent parameters take the CLI's defaults).
        **kwargs: more parameters (override ``params``).

    Returns:
        the model (a pytree following ``models/base.py``); the same (name, params) always give the same model.

    Raises:
        ValueError: bad name, parameters or data files (one message naming the bad value).
    """
    from .cli import build_model as _cli_build  # lazy: the CLI imports the sweep module

    p = resolve_model_params(name, {**(params or {}), **kwargs})
    seed = p.pop("seed", 0)
    return _cli_build(name, p, seed=seed).model


def model_signature(model) -> tuple:
    """(pytree structure incl. static fields, leaf shapes and dtypes): models with equal signatures stack into
    one batch and share one compiled program."""
    leaves, treedef = jax.tree.flatten(model)
    return treedef, tuple((tuple(np.shape(x)), str(jnp.result_type(x))) for x in leaves)
