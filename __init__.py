"""thermodl: a JAX simulation engine for the statistical physics of neural networks.

Top-level API::

    thermodl.log_partition(model, beta, *, method="auto"|"ais"|"ti"|"pt"|"exact", key, ...) -> LogZEstimate
    thermodl.thermodynamics(model, betas, *, key, ...) -> xarray.Dataset  (U, F, S, C, log_Z with stderr)
    thermodl.models.*      Ising2D, SK, RBM, Hopfield, BinaryPerceptron, weight_ensemble(flax model, X, y, ...)
    thermodl.kernels.*     one Monte Carlo algorithm per module (hmc, mala, block_gibbs, replica_exchange, ais, ...)
    thermodl.engine.*      ensembles, estimators, diagnostics, sweeps, CLI
"""

from . import engine, kernels, models
from .engine.api import log_partition, thermodynamics
from .engine.logz_estimate import LogZEstimate

__version__ = "0.1.0"
__all__ = ["engine", "kernels", "models", "log_partition", "thermodynamics", "LogZEstimate", "__version__"]
