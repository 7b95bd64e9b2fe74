"""Input checks for public functions: each raises ``ValueError`` with one clear message naming the bad value.

Every public entry point (``log_partition``, ``thermodynamics``, ``run_ensemble``, the CLI, ...) validates its
arguments with these helpers *before* anything is traced, so a bad β or size fails fast with a one-line message
instead of a NaN deep inside a compiled loop. Values that are already JAX tracers (a β passed through ``jit``)
cannot be inspected and are returned unchanged.

    >>> check_beta(0.5)
    0.5
    >>> check_choice("method", "foo", ("ais", "ti", "pt", "exact"))
    Traceback (most recent call last):
    ValueError: unknown method 'foo'; choose one of: ais, ti, pt, exact
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

__all__ = [
    "check_beta",
    "check_betas",
    "check_positive_int",
    "check_nonnegative_int",
    "check_positive_float",
    "check_choice",
    "check_finite_array",
    "check_shapes",
]


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def check_beta(beta: Any, name: str = "beta", *, allow_zero: bool = True) -> Any:
    """Check an inverse temperature (scalar or array): finite and ≥ 0 (> 0 when ``allow_zero=False``).

    Args:
        beta: a Python number, NumPy/JAX scalar or array of inverse temperatures.
        name: the argument name used in the message.
        allow_zero: whether β = 0 (infinite temperature) is allowed.
    Returns:
        ``beta`` as a Python float when it is a scalar, else as a NumPy array of the same shape (tracers are
        returned unchanged).
    Raises:
        ValueError: ``"beta must be finite and >= 0, got nan"`` (or naming the first bad element of an array).
    """
    if _is_tracer(beta):
        return beta
    if isinstance(beta, (str, bytes)) or beta is None:
        raise ValueError(f"{name} must be a number, got {beta!r}")
    try:
        arr = np.asarray(beta, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or an array of numbers, got {beta!r}") from None
    bound = ">= 0" if allow_zero else "> 0"
    bad = ~np.isfinite(arr) | (arr < 0) | ((arr == 0) & (not allow_zero))
    if arr.ndim == 0:
        if bad:
            raise ValueError(f"{name} must be finite and {bound}, got {float(arr)!r}")
        return float(arr)
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        where = idx[0] if len(idx) == 1 else idx
        raise ValueError(f"{name} must be finite and {bound}, got {name}[{where}] = {float(arr[idx])!r}")
    return arr


def check_betas(
    betas: Any, name: str = "betas", *, increasing: bool = False, start_at_zero: bool = False
) -> np.ndarray:
    """Check a 1-d grid of inverse temperatures ``[K]``.

    Args:
        betas: sequence or array ``[K]`` of β values (K ≥ 1).
        name: the argument name used in the message.
        increasing: require strictly increasing values (annealing schedules, integration grids).
        start_at_zero: require ``betas[0] == 0`` (AIS / TI schedules start at the reference ensemble).
    Returns:
        ``np.ndarray [K]`` float64.
    """
    arr = check_beta(betas, name)
    arr = np.atleast_1d(np.asarray(arr, dtype=np.float64))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if increasing and arr.size > 1:
        steps = np.diff(arr)
        if (steps <= 0).any():
            k = int(np.argmax(steps <= 0))
            raise ValueError(
                f"{name} must be strictly increasing, got {name}[{k}] = {float(arr[k])!r} >= "
                f"{name}[{k + 1}] = {float(arr[k + 1])!r}"
            )
    if start_at_zero and arr[0] != 0:
        raise ValueError(f"{name} must start at 0, got {name}[0] = {float(arr[0])!r}")
    return arr


def check_positive_int(value: Any, name: str) -> int:
    """Check a size or count: an integer ≥ 1 (bools and non-integral floats are rejected).

    Returns:
        ``value`` as a Python int.
    """
    return _check_int(value, name, minimum=1)


def check_nonnegative_int(value: Any, name: str) -> int:
    """Check a count that may be zero (warmup steps, burn-in): an integer ≥ 0. Returns a Python int."""
    return _check_int(value, name, minimum=0)


def _check_int(value: Any, name: str, minimum: int) -> int:
    what = "a positive integer" if minimum == 1 else "a non-negative integer"
    if isinstance(value, (bool, np.bool_)) or _is_tracer(value):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    elif isinstance(value, numbers.Real) and float(value).is_integer():
        out = int(value)
    elif isinstance(value, np.ndarray) and value.ndim == 0:
        return _check_int(value.item(), name, minimum)
    else:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if out < minimum:
        raise ValueError(f"{name} must be {what}, got {out}")
    return out


def check_positive_float(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """Check a scale (step size, prior width, temperature): a finite float > 0 (≥ 0 with ``allow_zero``).

    Returns:
        ``value`` as a Python float.
    """
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(out) or out < 0 or (out == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {out!r}")
    return out


def check_choice(name: str, value: Any, options: Iterable[str]) -> str:
    """Check that ``value`` is one of ``options`` (case-sensitive).

    Returns:
        ``value``.
    Raises:
        ValueError: ``"unknown method 'foo'; choose one of: ais, ti, pt, exact"``.
    """
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(options)}")
    return value


def check_finite_array(x: Any, name: str) -> np.ndarray | jax.Array:
    """Check that an array (data, couplings, weights) has only finite entries.

    Args:
        x: array-like of any shape.
        name: the argument name used in the message.
    Returns:
        ``x`` unchanged if it is a JAX array (or tracer), else ``np.asarray(x)``.
    Raises:
        ValueError: ``"X contains 3 non-finite values (NaN or inf), first at X[2, 0]"``.
    """
    if _is_tracer(x):
        return x
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers, got {type(x).__name__}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must be an array of numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.inexact):
        bad = ~np.isfinite(arr)
        n_bad = int(bad.sum())
        if n_bad:
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            where = f"{name}[{', '.join(map(str, first))}]" if first else name
            raise ValueError(f"{name} contains {n_bad} non-finite value(s) (NaN or inf), first at {where}")
    return x if isinstance(x, jax.Array) else arr


def check_shapes(arrays: Mapping[str, Any], spec: Mapping[str, Sequence[int | str | None]]) -> dict[str, int]:
    """Check array shapes against a spec with named dimensions that must agree across arrays.

    Args:
        arrays: ``{"X": X, "y": y}`` — anything with a ``.shape`` (or array-like).
        spec: ``{"X": ("P", "N"), "y": ("P",)}``; an entry is a dimension name (bound on first use and then
            required to match), a fixed int, or ``None`` (any size).
    Returns:
        the bound sizes, e.g. ``{"P": 20, "N": 15}``.
    Raises:
        ValueError: ``"shape mismatch: y has shape (19,) but axis 0 (P) must be 20 as in X"``.
    """
    bound: dict[str, tuple[int, str]] = {}
    for key, dims in spec.items():
        if key not in arrays:
            raise ValueError(f"check_shapes: no array named {key!r} (got {', '.join(arrays)})")
        shape = tuple(np.shape(arrays[key]))
        dims = tuple(dims)
        if len(shape) != len(dims):
            raise ValueError(f"{key} must have {len(dims)} dimension(s) {dims}, got shape {shape}")
        for axis, (size, want) in enumerate(zip(shape, dims)):
            if want is None:
                continue
            if isinstance(want, int):
                if size != want:
                    raise ValueError(f"shape mismatch: {key} has shape {shape} but axis {axis} must be {want}")
            elif want in bound:
                ref, ref_name = bound[want]
                if size != ref:
                    raise ValueError(
                        f"shape mismatch: {key} has shape {shape} but axis {axis} ({want}) must be {ref} "
                        f"as in {ref_name}"
                    )
            else:
                bound[want] = (int(size), key)
    return {k: v[0] for k, v in bound.items()}
