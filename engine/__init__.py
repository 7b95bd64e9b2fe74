"""Ensembles, estimators, observables, diagnostics, sweeps, result store and CLI.

Modules: ``kernel_binding`` (bind a kernel to a model), ``ensemble`` (equilibrium sampling over temperatures × chains ×
disorder), ``observables`` and ``diagnostics`` (streamed moments, R-hat, ESS), estimators ``ais``, ``smc`` (on the one annealing loop, ``annealing``), ``ti``,
``tempering`` (parallel tempering), ``api`` (``log_partition``, ``thermodynamics``), ``exact`` (the one rule for
exact reference values), ``io`` (atomic file writes, JSON, netCDF), ``registry`` (named experiments).
Sub-packages: ``catalog`` (built-in models by name), ``sweep`` (declarative, sharded, resumable sweeps; with
``sharding``) and ``cli`` (the ``thermodl`` command).
"""

from .api import exact_log_partition, log_partition, thermodynamics
from .ais import ais_log_partition, run_ais
from .smc import population_anneal, run_smc, smc_log_partition
from .ensemble import EnsembleResult, run_ensemble
from .logz_estimate import LogZEstimate
from .kernel_binding import Sampler, make_sampler
from .tempering import pt_log_partition, run_tempering
from .ti import ti_curve, ti_log_partition

__all__ = [
    "log_partition",
    "thermodynamics",
    "exact_log_partition",
    "ais_log_partition",
    "run_ais",
    "smc_log_partition",
    "run_smc",
    "population_anneal",
    "run_ensemble",
    "EnsembleResult",
    "LogZEstimate",
    "Sampler",
    "make_sampler",
    "run_tempering",
    "pt_log_partition",
    "ti_curve",
    "ti_log_partition",
]
