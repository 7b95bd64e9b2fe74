"""Data sets for weight-space ensembles: Gardner patterns, teacher–student data, .npz files, sklearn digits.

All functions return host-validated arrays (no NaN/inf) with a leading data axis: inputs ``[P, N]``, labels
``[P]``. Randomness comes from explicit ``jax.random`` keys (digits: an integer seed for the split).
"""

from __future__ import annotations

import math
import os
from typing import Any, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .topologies import CommitteeMachine, Perceptron

__all__ = ["Patterns", "Dataset", "TeacherStudent", "gardner_patterns", "teacher_student", "load_npz", "digits"]

TEACHERS = ("perceptron", "binary_perceptron", "committee")


class Patterns(NamedTuple):
    """Inputs ``X [P, ...]`` and labels ``y [P, ...]`` (unpacks as ``X, y = ...``)."""

    X: jax.Array
    y: jax.Array | None


class Dataset(NamedTuple):
    """Training inputs ``X [P, ...]`` and labels ``y [P]``; held-out ``X_test``, ``y_test`` (or None)."""

    X: jax.Array
    y: jax.Array
    X_test: jax.Array | None = None
    y_test: jax.Array | None = None


class TeacherStudent(NamedTuple):
    """Teacher–student data. ``teacher`` is the flax NNX teacher; ``teacher_params`` its flat weights ``[dim]``
    in ``ravel_pytree`` order, i.e. the order of a student ``weight_ensemble`` of the same topology, so the
    teacher–student overlap is R = w·w*/dim."""

    X: jax.Array
    y: jax.Array
    X_test: jax.Array
    y_test: jax.Array
    teacher: Any
    teacher_params: jax.Array


def _positive(name: str, value, allow_zero: bool = False) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}")
    return int(value)


def gardner_patterns(key: jax.Array, P: int, N: int, dtype=jnp.float32) -> Patterns:
    """Random ±1 patterns with random ±1 labels (the Gardner storage problem).

    Args:
      key: ``jax.random.key``.
      P: number of patterns.
      N: input dimension.
      dtype: float dtype.

    Returns:
      ``Patterns(X [P, N], y [P])``, entries i.i.d. uniform on {−1, +1}.
    """
    P, N = _positive("P", P), _positive("N", N)
    kx, ky = jax.random.split(key)
    return Patterns(jax.random.rademacher(kx, (P, N), dtype=dtype), jax.random.rademacher(ky, (P,), dtype=dtype))


def _inputs(key, P: int, N: int, inputs: str, dtype):
    if inputs == "gaussian":
        return jax.random.normal(key, (P, N), dtype)
    return jax.random.rademacher(key, (P, N), dtype=dtype)


def teacher_student(key: jax.Array, P: int, N: int, *, teacher="perceptron", P_test: int = 1000,
                    inputs: str = "gaussian", labels: str | None = None, n_hidden: int = 2, noise: float = 0.0,
                    dtype=jnp.float32) -> TeacherStudent:
    """Teacher–student data: inputs i.i.d., labels from a random teacher network (Gardner & Derrida 1989;
    Seung, Sompolinsky & Tishby 1992).

    Args:
      key: ``jax.random.key``.
      P: number of training examples.
      N: input dimension (ignored when ``teacher`` is a module: taken from its first layer's inputs).
      teacher: ``"perceptron"`` (Gaussian weights N(0, 1), ``topologies.Perceptron``), ``"binary_perceptron"``
        (±1 weights), ``"committee"`` (``CommitteeMachine(N, n_hidden, "erf")``, Gaussian weights), or any
        ``nnx.Module`` with its (random) weights already set, mapping ``[P, N]`` inputs to one output.
      P_test: number of held-out examples (≥ 0).
      inputs: ``"gaussian"`` (N(0, 1)) or ``"binary"`` (±1).
      labels: ``"sign"`` (y = ±1, y = sign(f) with f = 0 → −1) or ``"real"`` (y = f); default "sign" for the
        perceptrons, "real" otherwise.
      n_hidden: hidden units of the committee teacher.
      noise: output noise std: y = sign(f + noise·ξ) or f + noise·ξ with ξ ~ N(0, 1).
      dtype: float dtype.

    Returns:
      ``TeacherStudent(X [P, N], y [P], X_test [P_test, N], y_test [P_test], teacher, teacher_params [dim])``.
    """
    P, P_test = _positive("P", P), _positive("P_test", P_test, allow_zero=True)
    if inputs not in ("gaussian", "binary"):
        raise ValueError(f"unknown inputs {inputs!r}; choose one of: gaussian, binary")
    noise = float(noise)
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be finite and ≥ 0, got {noise}")
    k_teacher, k_binary, k_x, k_noise = jax.random.split(key, 4)
    if isinstance(teacher, nnx.Module):
        model = teacher
        default_labels = "real"
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        N = _first_input_dim(params, N)
    elif isinstance(teacher, str) and teacher in TEACHERS:
        N = _positive("N", N)
        rngs = nnx.Rngs(params=k_teacher)
        if teacher == "committee":
            model = CommitteeMachine(N, n_hidden, "erf", rngs=rngs, param_dtype=dtype)
            default_labels = "real"
        else:
            model = Perceptron(N, rngs=rngs, param_dtype=dtype)
            if teacher == "binary_perceptron":
                model.linear.kernel[...] = jax.random.rademacher(k_binary, (N, 1), dtype=dtype)
            default_labels = "sign"
    else:
        raise ValueError(f"unknown teacher {teacher!r}; choose one of: {', '.join(TEACHERS)} or an nnx.Module")
    labels = default_labels if labels is None else labels
    if labels not in ("sign", "real"):
        raise ValueError(f"unknown labels {labels!r}; choose one of: sign, real")
    X_all = _inputs(k_x, P + P_test, N, inputs, dtype)
    try:
        f = model(X_all)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"teacher does not accept inputs of shape {(P + P_test, N)}: {err}") from None
    if f.size != P + P_test:
        raise ValueError(f"teacher must have one output per example, got output shape {f.shape}")
    f = f.reshape(-1) + noise * jax.random.normal(k_noise, (P + P_test,), f.dtype)
    y_all = jnp.where(f > 0, 1.0, -1.0).astype(dtype) if labels == "sign" else f.astype(dtype)
    flat, _ = jax.flatten_util.ravel_pytree(nnx.state(model, nnx.Param))
    return TeacherStudent(X_all[:P], y_all[:P], X_all[P:], y_all[P:], model, flat)


def _first_input_dim(params, N):
    for leaf in jax.tree.leaves(params):
        if np.ndim(leaf) >= 2:
            return int(np.shape(leaf)[0])
    return _positive("N", N)


def load_npz(path, x_key: str = "X", y_key: str | None = "y") -> Patterns:
    """Load a data set from an ``.npz`` file.

    Args:
      path: file path.
      x_key: name of the input array ``[P, ...]``.
      y_key: name of the label array ``[P, ...]`` (None: inputs only, y is None).

    Returns:
      ``Patterns(X, y)`` as jax arrays (integer labels stay integer).

    Raises:
      ValueError: missing or unreadable file, missing keys (lists the keys present), non-numeric arrays,
        NaN/inf, or X and y with different numbers of examples.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"data file {path!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"cannot read {path!r} as an .npz file: {err}") from None
    wanted = [x_key] + ([y_key] if y_key is not None else [])
    for k in wanted:
        if k not in arrays:
            raise ValueError(f"{path!r} has no array {k!r}; it has: {', '.join(sorted(arrays)) or 'nothing'}")
    out = []
    for k in wanted:
        a = arrays[k]
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise ValueError(f"{path!r}: array {k!r} is not numeric (dtype {a.dtype})")
        if a.ndim < 1 or a.shape[0] < 1:
            raise ValueError(f"{path!r}: array {k!r} needs a non-empty leading data axis, got shape {a.shape}")
        if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
            raise ValueError(f"{path!r}: array {k!r} contains NaN or inf")
        out.append(a)
    if y_key is not None and out[0].shape[0] != out[1].shape[0]:
        raise ValueError(f"{path!r}: {x_key!r} has {out[0].shape[0]} examples but {y_key!r} has {out[1].shape[0]}"
                         f" (shapes {out[0].shape} and {out[1].shape})")
    X = jnp.asarray(out[0] if np.issubdtype(out[0].dtype, np.floating) else out[0].astype(np.float64))
    return Patterns(X, None if y_key is None else jnp.asarray(out[1]))


def digits(*, classes=None, test_fraction: float = 0.25, n_train: int | None = None, seed: int = 0,
           dtype=jnp.float32) -> Dataset:
    """scikit-learn's bundled 8×8 handwritten digits (1797 images; nothing is downloaded).

    Args:
      classes: None (all ten digits, integer labels 0..9); two digits ``(a, b)`` (binary: a → −1, b → +1);
        or k > 2 distinct digits (integer labels = position in ``classes``).
      test_fraction: fraction of the selected images held out (0 ≤ f < 1; 0 gives no test set).
      n_train: keep at most this many training images (after the split).
      seed: seed of the (numpy) permutation that shuffles before splitting.
      dtype: float dtype of the images.

    Returns:
      ``Dataset(X [P, 64], y [P], X_test, y_test)``, pixels scaled to [0, 1] (raw values are 0..16).
    """
    from sklearn.datasets import load_digits

    test_fraction = float(test_fraction)
    if not (0.0 <= test_fraction < 1.0):
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    raw = load_digits()
    images, targets = raw.data.astype(np.float64) / 16.0, raw.target
    if classes is None:
        classes = tuple(range(10))
    classes = tuple(int(c) for c in classes)
    if len(classes) < 2 or len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes):
        raise ValueError(f"classes must be ≥ 2 distinct digits in 0..9, got {classes}")
    keep = np.isin(targets, classes)
    images, targets = images[keep], targets[keep]
    index = np.array([classes.index(t) for t in targets])
    y = (2.0 * index - 1.0).astype(np.dtype(dtype)) if len(classes) == 2 else index.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(y))
    images, y = images[order], y[order]
    n_test = int(round(test_fraction * len(y)))
    X_tr, y_tr = images[n_test:], y[n_test:]
    if n_train is not None:
        n_train = _positive("n_train", n_train)
        X_tr, y_tr = X_tr[:n_train], y_tr[:n_train]
    X_te, y_te = (images[:n_test], y[:n_test]) if n_test > 0 else (None, None)
    as_x = lambda a: None if a is None else jnp.asarray(a, dtype)  # noqa: E731
    return Dataset(as_x(X_tr), jnp.asarray(y_tr), as_x(X_te), None if y_te is None else jnp.asarray(y_te))
