"""Export runner results to the tools people analyse MCMC output with: ArviZ ``InferenceData``.

``to_inference_data(result)`` turns the thinned traces of an equilibrium run (``run_ensemble`` /
``run_tempering`` with ``trace_every=``) into an ``arviz.InferenceData`` whose ``posterior`` group has dimensions
``(chain, draw, ...)`` — so ``az.summary`` / ``az.plot_trace`` / ``az.rhat`` work — with the temperatures (and
disorder samples) as extra dimensions ``beta`` (``disorder``). Independent copies of a chain (``n_copies=2``) are
independent chains for ArviZ and are laid side by side on the chain axis. Every variable carries ``long_name``
and ``units`` attributes; the run's settings go to the group's attributes. ArviZ is an optional dependency
(``pip install arviz``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["to_inference_data", "LONG_NAMES"]

LONG_NAMES = {
    "energy": ("energy E(x)", "energy units (E as defined by the model; β E is dimensionless)"),
    "magnetization": ("magnetisation per site m(x)", "1"),
}


def _chain_draw_first(x: np.ndarray, n_lead: int, copies: bool) -> tuple[np.ndarray, int]:
    """[lead..., (A,) C, draws, *value] -> [A·C, draws, lead..., *value]; returns (array, number of lead dims)."""
    c_ax = n_lead + (1 if copies else 0)
    if copies:  # merge copies into chains: [..., A, C, ...] -> [..., A·C, ...]
        x = x.reshape(x.shape[:n_lead] + (x.shape[n_lead] * x.shape[n_lead + 1],) + x.shape[n_lead + 2:])
        c_ax = n_lead
    x = np.moveaxis(x, [c_ax, c_ax + 1], [0, 1])
    return x, n_lead


def to_inference_data(result: Any, **attrs) -> Any:
    """``arviz.InferenceData`` (group ``posterior``) from an ``EnsembleResult`` recorded with ``trace_every``.

    Args:
        result: ``engine.ensemble.EnsembleResult`` (also parallel-tempering results) with traces.
        **attrs: extra attributes for the group (e.g. the model's name).
    Returns:
        ``arviz.InferenceData``; variables ``energy`` (and ``magnetization`` / user observables) with dims
        ``(chain, draw, [disorder,] beta, ...)``.
    Raises:
        ValueError: the run kept no traces; ImportError (with a hint) when ArviZ is not installed.
    """
    if getattr(result, "traces", None) is None:
        raise ValueError("the run kept no traces: run it with trace_every=K to export draws to ArviZ")
    try:
        import arviz as az
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("to_inference_data needs ArviZ: pip install arviz") from err
    copies = result.n_copies > 1
    n_lead = np.asarray(result.nonfinite).ndim - (2 if copies else 1)  # (D,) T
    lead_dims = (["disorder"] if n_lead == 2 else []) + ["beta"]
    data, dims = {}, {}
    for name, trace in result.traces.items():
        arr, _ = _chain_draw_first(np.asarray(trace), n_lead, copies)
        extra = [f"{name}_dim_{i}" for i in range(arr.ndim - 2 - n_lead)]
        data[name] = arr
        dims[name] = lead_dims + extra
    coords = {"beta": np.asarray(result.betas, np.float64)}
    ds = az.from_dict(posterior=data, dims=dims, coords=coords)
    ds.posterior.attrs.update(kernel=result.kernel, n_steps=result.n_steps, n_warmup=result.n_warmup,
                              n_copies=result.n_copies, inference_library="thermodl", **attrs)
    for name in data:
        long_name, units = LONG_NAMES.get(name, (f"user observable {name}", "model units"))
        ds.posterior[name].attrs.update(long_name=long_name, units=units)
    return ds
