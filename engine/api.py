"""The public entry points: ``log_partition`` (one β, any method) and ``thermodynamics`` (a β grid -> xarray).

``log_partition(model, beta, method=...)`` dispatches to

* ``"exact"``: ``model.exact_log_partition`` (closed form: Kaufman for the 2D Ising model, summed-out RBM,
  Gaussian evidence) or, for discrete models with dim ≤ 24, enumeration of all states
  (``models.exact.enumerate_log_partition``); computed in float64;
* ``"ais"``: annealed importance sampling (``engine.ais``; Neal 2001);
* ``"ti"``: thermodynamic integration of ⟨E⟩ (``engine.ti``; Kirkwood 1935, Gelman & Meng 1998);
* ``"pt"``: parallel tempering + geometric bridge sampling (``engine.tempering``);
* ``"smc"``: adaptive tempered SMC / population annealing (``engine.smc``; Del Moral et al. 2006);
* ``"auto"``: exact when available (``engine.exact``), else adaptive SMC — the most robust estimator we have for
  both continuous and discrete models (its error bar comes from independent runs and it checks itself) — run to a
  default accuracy target ``tol = AUTO_TOL`` (0.05 nats) when none is given. ``diagnostics["method_chosen"]`` and
  ``["method_reason"]`` record the choice.

Accuracy targets: with ``tol=`` (nats) the budget (particles, sweeps, runs, temperatures, steps) is grown until the
standard error is ≤ tol AND the estimator calls itself reliable, or until ``max_time`` (seconds, default 600) or
``max_budget`` (particle-steps) is spent; then the last estimate comes back with ``reliable=False``, the reason and
a ``RuntimeWarning`` (``engine.accuracy``). Supported for smc, ais, ti and pt.

``thermodynamics(model, betas, method="ti"|"pt")`` returns U(β), F(β), S(β), C(β) and log Z(β) on a grid with
standard errors, as an ``xarray.Dataset`` with coordinate ``beta``. Conventions (k_B = 1, totals not per site):
U = ⟨E⟩, log Z relative to the model's exact reference log Z(0), F = −log Z/β (NaN at β = 0), S = β(U − F) =
log Z + βU (so S(0) = log Z(0): the entropy of the reference measure), C = β² Var(E).
"""

from __future__ import annotations

from typing import Any

from .logz_estimate import LogZEstimate
from .exact import exact_log_partition_value, exact_source
from .keys import as_key
from .validate import check_beta, check_choice

__all__ = ["log_partition", "thermodynamics", "exact_log_partition", "resolve_method", "METHODS", "AUTO_TOL"]

METHODS = ("auto", "ais", "smc", "ti", "pt", "exact")
AUTO_TOL = 0.05  # nats: the default accuracy target of method="auto" when no exact value exists
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


def _auto_choice(model: Any) -> tuple[str, str]:
    """(method, why) of the "auto" rule."""
    source = exact_source(model)
    if source is not None:
        return "exact", f"an exact value exists ({source})"
    kind = getattr(model, "kind", "?")
    return "smc", (f"no exact value for this {kind} model: adaptive SMC (independent runs give an honest error bar; "
                   "it flags itself unreliable)")


def resolve_method(model: Any, method: str) -> str:
    """The ONE "auto" rule: ``"exact"`` when ``engine.exact`` has a value for the model, else ``"smc"`` (adaptive
    SMC, for continuous and discrete models alike); any other method name is checked and returned unchanged."""
    check_choice("method", method, METHODS)
    if method != "auto":
        return method
    return _auto_choice(model)[0]


def log_partition(model: Any, beta: float, *, method: str = "auto", key=None, tol=None, max_time=None,
                  max_budget=None, **options) -> LogZEstimate:
    """log Z(β) of ``model`` with a standard error, by the chosen method, optionally to an accuracy target.

    Args:
        model: a thermodl model (``models/base.py``).
        beta: inverse temperature, finite and ≥ 0.
        method: ``"auto"`` (exact when available, else ``"smc"`` with ``tol`` defaulting to ``AUTO_TOL``),
            ``"ais"``, ``"smc"``, ``"ti"``, ``"pt"`` or ``"exact"``.
        key: ``jax.random.key`` or int seed; required by the stochastic methods.
        tol: target standard error of log Z in nats (> 0). The budget grows until stderr ≤ tol and the estimate is
            reliable (``engine.accuracy``); budget options in ``options`` set the first round. None: one run with
            the given options (except for ``"auto"``, see above).
        max_time: seconds for the whole tol loop (default 600). max_budget: particle-steps (one kernel step of
            one particle / chain / replica; default no limit). When a limit stops the loop first, the result has
            ``reliable=False``, the reason, and a ``RuntimeWarning`` is raised.
        **options: passed to the estimator (``engine.ais.ais_log_partition``, ``engine.smc.smc_log_partition``,
            ``engine.ti.ti_log_partition``, ``engine.tempering.pt_log_partition``).

    Returns:
        ``LogZEstimate``; with a tol, diagnostics also hold ``tol``, ``tol_reached``, ``rounds`` (the budget
        trajectory), ``budget_used``, ``wall_s``; with ``"auto"``, ``method_chosen`` and ``method_reason``.

    Raises:
        ValueError: bad β, tol, max_time or max_budget, unknown method, missing key, a tol for a method without
            tol support, or no exact method for ``method="exact"``.
    """
    beta = check_beta(beta, "beta")
    from .accuracy import _check_limit, check_tol, log_partition_to_tol

    if tol is not None:
        tol = check_tol(tol)
    max_time, max_budget = _check_limit(max_time, "max_time"), _check_limit(max_budget, "max_budget")
    check_choice("method", method, METHODS)
    auto = method == "auto"
    method, why = _auto_choice(model) if auto else (method, "")
    if method == "exact":
        if options:
            raise ValueError(f"method 'exact' takes no options, got {', '.join(sorted(options))}")
        est = exact_log_partition(model, beta)
        if tol is not None:
            est.diagnostics.update(tol=tol, tol_reached=True)
    else:
        if key is None:
            raise ValueError(f"key is required for method {method!r} (pass jax.random.key(seed) or an int seed)")
        if auto and tol is None:
            tol = AUTO_TOL
        if tol is not None:
            est = log_partition_to_tol(model, beta, method, key=as_key(key), tol=tol, max_time=max_time,
                                       max_budget=max_budget, **options)
        else:
            if max_time is not None or max_budget is not None:
                raise ValueError("max_time / max_budget apply only with tol= (an accuracy target)")
            est = _estimator(method)(model, beta, key=as_key(key), **options)
    if auto:
        est.diagnostics.update(method_chosen=method, method_reason=why)
    return est


# ---------------------------------------------------------------------------------------------- thermodynamics
# ``thermodynamics`` lives in its own module (engine/thermo.py) and is re-exported here.
from .thermo import thermodynamics  # noqa: E402
