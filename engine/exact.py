"""Exact reference values: the ONE rule for "is there an exact value" and the ONE float64 evaluation.

A model has an exact log Z when it defines ``exact_log_partition(beta)`` (closed forms: Kaufman's finite Ising
torus, summed-out RBMs, Gaussian evidence, ...) or is discrete with ``dim <= MAX_ENUMERATION_DIM`` (enumeration,
``models.exact``). Everything here is computed under ``jax.enable_x64`` on a float64 copy of the model.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["exact_source", "has_exact_value", "to_float64", "exact_log_partition_value", "exact_thermodynamics"]


def to_float64(model: Any) -> Any:
    """The model with every floating leaf (and Python float) cast to float64 (call inside ``enable_x64``)."""

    def cast(a):
        if isinstance(a, float) or (hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating)):
            return jnp.asarray(a, jnp.float64)
        return a

    return jax.tree.map(cast, model)


def exact_source(model: Any) -> str | None:
    """``"closed_form"``, ``"enumeration"`` or ``None``: how an exact log Z of ``model`` can be had."""
    from thermodl.models.exact import MAX_ENUMERATION_DIM

    try:
        if callable(getattr(model, "exact_log_partition", None)):
            return "closed_form"
    except ValueError:  # a model may refuse (e.g. Ising2D with h != 0 on a wide lattice)
        pass
    if getattr(model, "kind", None) == "discrete" and int(model.dim) <= MAX_ENUMERATION_DIM:
        return "enumeration"
    return None


def has_exact_value(model: Any) -> bool:
    """True when ``exact_source(model)`` is not None."""
    return exact_source(model) is not None


def exact_log_partition_value(model: Any, beta: float) -> tuple[float, str]:
    """(exact log Z(β) in float64, source).

    Raises:
        ValueError: no exact method applies, or the value is not finite.
    """
    source = exact_source(model)
    if source is None:
        raise ValueError(
            f"no exact log Z for {type(model).__name__} (dim={getattr(model, 'dim', '?')}): it has no "
            "exact_log_partition and is not a small discrete model; use method 'ais', 'smc', 'ti' or 'pt'"
        )
    with jax.enable_x64(True):
        m64 = to_float64(model)
        if source == "closed_form":
            value = m64.exact_log_partition(jnp.float64(beta))
        else:
            from thermodl.models.exact import enumerate_log_partition

            value = enumerate_log_partition(m64, jnp.float64(beta))
        value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"exact log Z of {type(model).__name__} at beta={beta!r} is not finite ({value})")
    return value, source


def exact_thermodynamics(model: Any, beta: float) -> tuple[float, float] | None:
    """Exact (U, C) at β in float64 when available (enumeration or the model's closed form), else None."""
    from thermodl.models import exact

    source = exact_source(model)
    if source is None:
        return None
    with jax.enable_x64(True):
        m64 = to_float64(model)
        try:
            if source == "enumeration":
                o = exact.enumerate_observables(m64, jnp.float64(beta), return_probabilities=False)
            else:
                o = exact.exact_thermodynamics(m64, jnp.float64(beta))
        except ValueError:
            return None
        return float(o.energy), float(o.specific_heat)
