"""Declarative parameter sweeps: TOML config → grid → compile groups → batched, sharded, resumable runs.

A sweep config (TOML file or dict) has the sections ``[model]``, ``[data]``, ``[sampler]``, ``[estimator]``,
``[sweep]`` and ``[output]``; any scalar may instead be a grid axis: a list, ``{linspace=[a, b, n]}``,
``{logspace=[a, b, n]}`` (10^a … 10^b), ``{geomspace=[a, b, n]}`` or ``{range=[start, stop(, step)]}``::

    [model]
    name = "sk"
    n = [8, 12]                     # static: changes shapes -> one compile group per value
    [sweep]
    beta = {linspace = [0.2, 2.0, 10]}
    disorder_seed = [0, 1, 2, 3]    # couplings J_ij drawn from each seed -> stacked models, batched
    [estimator]
    method = "ensemble"             # | "ais" | "pt" | "ti" | "exact" | "thermodynamics"
    seed = 0                        # Monte Carlo seed: chains' random numbers, never the couplings
    n_chains = 64
    n_steps = 2000
    [output]
    path = "sk.nc"

Two seeds, never mixed: ``[sweep] disorder_seed`` draws the model's disorder (couplings, patterns, data) and
nothing else; ``[estimator] seed`` is the Monte Carlo seed and never changes the model. The old spelling
``[sweep] seed`` (and ``seed`` in ``[model]`` / ``[data]``) meant the disorder seed; it is still read as
``disorder_seed``, with a ``FutureWarning``.

The full grid is the Cartesian product of all axes. Axes are classified (``plan._role``):

* **static** — sizes, model name, kernel, method, budgets: a new value may change shapes or the program, so
  every combination of static values is a *compile group*, compiled once;
* **model** — values that only change the model's numbers (``disorder_seed``, J, h, σ_w; see
  ``catalog.traced_params``): the models of a group are stacked (``models.stack_models``) along a disorder
  axis;
* **point** — β, the step size and the Monte Carlo seed (``[estimator] seed``): traced scalars per point.

A group is the rectangle [model variants × points]; it is cut into *units* of about ``[output] unit_size`` grid
points (padded to one shape, so each group compiles exactly once). For ``method="ensemble"`` a unit runs as ONE
call of one jitted program over (disorder × points × chains) lanes, the chain axis sharded over all local
devices (``engine.sharding``). The log-Z methods (``ais``, ``pt``, ``ti``, ``exact``) and ``thermodynamics``
loop over the unit's points calling the engine's estimators, whose compiled functions take the model and β as
traced arguments (compiled once per group too).

Randomness: point p gets the key fold_in(fold_in(key(0), h₀), h₁) with (h₀, h₁) a hash of p's full parameter
set (including ``[estimator] seed`` and ``disorder_seed``, so each disorder sample has its own chains), and
chain c of it fold_in(·, c) with the GLOBAL chain index: results depend neither on the unit layout, nor on the
number of devices, nor on which other points the grid holds.

Each unit is written atomically into ``OUT.parts/`` (``store``); a killed sweep resumes from the units on
disk; the final dataset (netCDF, h5netcdf) has one dimension per grid axis, every observable with its
``<obs>_stderr`` and diagnostics, and attrs with the config (JSON) and the package versions.

Modules: ``config`` (TOML → validated config), ``plan`` (axes, compile groups, units, dry-run text),
``unit_programs`` (what one unit computes), ``store`` (per-unit files, manifest, resume), ``run`` (``run_sweep``).
"""


from .config import METHODS, load_config, normalize_config
from .plan import Axis, Group, SweepPlan, describe_plan, plan_sweep, point_config, units
from .run import run_sweep

__all__ = ["METHODS", "Axis", "Group", "SweepPlan", "load_config", "normalize_config", "plan_sweep", "run_sweep",
           "point_config", "units", "describe_plan"]
