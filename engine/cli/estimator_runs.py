"""Estimator runs of ``thermodl logz`` / ``thermodl thermo``: the CLI's budget options mapped onto the estimators.

``--chains``, ``--steps`` and ``--n-betas`` are mapped onto the keywords of the estimator a method resolves to;
``"auto"`` resolves by the one rule of ``engine.exact`` (exact when available, else adaptive SMC with a default tol). Progress callbacks follow
the estimators' convention ``progress(done, total)``. ``seed`` is the Monte Carlo seed only: the model is built
before, from its own disorder seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..exact import exact_log_partition_value
from .options import METHOD_OPTIONS, RUN_FLAGS

__all__ = ["exact_log_partition", "resolve_method", "run_log_partition", "run_thermodynamics"]

def exact_log_partition(model: Any, beta: float) -> float | None:
    """The exact log Z(β) in float64 (``engine.exact.exact_log_partition_value``) when one exists, else None."""
    try:
        return exact_log_partition_value(model, beta)[0]
    except ValueError:  # no closed form and too large to enumerate (or e.g. Ising with h ≠ 0 on a wide lattice)
        return None


def resolve_method(model: Any, method: str) -> str:
    """The method ``engine.api.log_partition`` will run (``api.resolve_method``: the one "auto" rule)."""
    from ..api import resolve_method as rule

    return rule(model, method)


def run_log_partition(model: Any, beta: float, *, method: str, seed: int, kernel: str = "auto",
                      progress: Callable[[int, int], None] | None = None, **budget) -> Any:
    """``engine.api.log_partition`` with the CLI's budget options mapped onto the chosen estimator's keywords.

    Args:
        model: a built model; beta: β ≥ 0; method: auto, ais, smc, ti, pt or exact; seed: Monte Carlo seed of the run.
        progress: ``progress(done, total)``, used by the PT and TI runs.
        **budget: ``n_chains``, ``n_steps``, ``n_betas`` (see ``cli.options.run_options``), and ``tol`` /
            ``max_time`` (``--tol`` / ``--max-time``), passed through unchanged to ``engine.api.log_partition``.
    Returns:
        ``LogZEstimate``.
    """
    import jax

    from ..api import log_partition

    requested, method = method, resolve_method(model, method)
    refine = {k: budget.pop(k) for k in ("tol", "max_time") if k in budget}
    mapping = METHOD_OPTIONS[method]
    for name in budget:
        if name not in mapping:
            raise ValueError(f"{RUN_FLAGS[name]} does not apply to method {method!r}"
                             + (" (auto picked exact; choose --method ais, ti or pt)" if method == "exact" else ""))
    if method == "exact":
        return log_partition(model, beta, method="exact")
    options = {mapping[k]: v for k, v in budget.items()}
    options.update(refine)
    if progress is not None and method in ("pt", "ti"):
        options["progress"] = progress
    # "auto" goes to the API unresolved, so that its default accuracy target (api.AUTO_TOL) applies
    return log_partition(model, beta, method=requested if requested == "auto" else method, key=jax.random.key(seed),
                         kernel=kernel, **options)


def run_thermodynamics(model: Any, betas, *, method: str, seed: int, kernel: str = "auto",
                       progress: Callable[[int, int], None] | None = None, **budget):
    """``engine.api.thermodynamics`` on the β grid (``progress(done, total)``); returns its ``xarray.Dataset``."""
    import jax

    from ..api import thermodynamics

    options = {"kernel": kernel, **budget}
    if progress is not None:
        options["progress"] = progress
    return thermodynamics(model, betas, key=jax.random.key(seed), method=method, **options)
