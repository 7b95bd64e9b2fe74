"""The public entry points: ``log_partition`` (one β, any method) and ``thermodynamics`` (a β grid -> xarray).

``log_partition(model, beta, method=...)`` dispatches to

* ``"exact"``: ``model.exact_log_partition`` (closed form: Kaufman for the 2D Ising model, summed-out RBM,
  Gaussian evidence) or, for discrete models with dim ≤ 24, enumeration of all states
  (``models.exact.enumerate_log_partition``); computed in float64;
* ``"ais"``: annealed importance sampling (``engine.ais``; Neal 2001);
* ``"ti"``: thermodynamic integration of ⟨E⟩ (``engine.ti``; Kirkwood 1935, Gelman & Meng 1998);
* ``"pt"``: parallel tempering + geometric bridge sampling (``engine.tempering``);
* ``"auto"``: exact when available, else AIS.

``thermodynamics(model, betas, method="ti"|"pt")`` returns U(β), F(β), S(β), C(β) and log Z(β) on a grid with
standard errors, as an ``xarray.Dataset`` with coordinate ``beta``. Conventions (k_B = 1, totals not per site):
U = ⟨E⟩, log Z relative to the model's exact reference log Z(0), F = −log Z/β (NaN at β = 0), S = β(U − F) =
log Z + βU (so S(0) = log Z(0): the entropy of the reference measure), C = β² Var(E).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .estimate import LogZEstimate
from .exact import exact_log_partition_value, exact_source
from .keys import as_key
from .validate import check_beta, check_betas, check_choice, check_nonnegative_int, check_positive_int

__all__ = ["log_partition", "thermodynamics", "exact_log_partition", "resolve_method", "METHODS"]

METHODS = ("auto", "ais", "smc", "ti", "pt", "exact")
THERMO_METHODS = ("ti", "pt")


def exact_log_partition(model: Any, beta: float) -> LogZEstimate:
    """Exact log Z(β) in float64 (``engine.exact``: the model's closed form, else enumeration).

    Raises:
        ValueError: no exact method applies to this model.
    """
    beta = check_beta(beta, "beta")
    value, source = exact_log_partition_value(model, beta)
    return LogZEstimate(value, 0.0, "exact", beta, {"source": source})


def _estimator(method: str):
    """The estimator function of ``method`` (imported lazily)."""
    if method == "ais":
        from .ais import ais_log_partition as fn
    elif method == "smc":
        from .smc import smc_log_partition as fn
    elif method == "ti":
        from .ti import ti_log_partition as fn
    else:
        from .tempering import pt_log_partition as fn
    return fn


def resolve_method(model: Any, method: str) -> str:
    """The ONE "auto" rule: ``"exact"`` when ``engine.exact`` has a value for the model, else ``"ais"``; any other
    method name is checked and returned unchanged."""
    check_choice("method", method, METHODS)
    if method != "auto":
        return method
    return "exact" if exact_source(model) is not None else "ais"


def log_partition(model: Any, beta: float, *, method: str = "auto", key=None, **options) -> LogZEstimate:
    """log Z(β) of ``model`` with a standard error, by the chosen method.

    Args:
        model: a thermodl model (``models/base.py``).
        beta: inverse temperature, finite and ≥ 0.
        method: ``"auto"`` (exact when available, else ``"ais"``), ``"ais"``, ``"smc"``, ``"ti"``, ``"pt"`` or
            ``"exact"``.
        key: ``jax.random.key`` or int seed; required by the stochastic methods.
        **options: passed to the estimator (``engine.ais.ais_log_partition``, ``engine.smc.smc_log_partition``,
            ``engine.ti.ti_log_partition``, ``engine.tempering.pt_log_partition``).

    Returns:
        ``LogZEstimate``.

    Raises:
        ValueError: bad β, unknown method, missing key, or no exact method for ``method="exact"``.
    """
    beta = check_beta(beta, "beta")
    method = resolve_method(model, method)
    if method == "exact":
        if options:
            raise ValueError(f"method 'exact' takes no options, got {', '.join(sorted(options))}")
        return exact_log_partition(model, beta)
    if key is None:
        raise ValueError(f"key is required for method {method!r} (pass jax.random.key(seed) or an int seed)")
    return _estimator(method)(model, beta, key=as_key(key), **options)


# ---------------------------------------------------------------------------------------------- thermodynamics
# ``thermodynamics`` lives in its own module (engine/thermo.py) and is re-exported here.
from .thermo import thermodynamics  # noqa: E402
