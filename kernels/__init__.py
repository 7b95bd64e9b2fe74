"""Monte Carlo kernels: one algorithm per module, each a pair of pure functions (BlackJAX style).

Contract (see ../shared/STYLE.md):

* ``init(position, energy_fn, ...) -> State`` and ``step(key, state, energy_fn, beta, ...) -> (State, Info)``.
  ``State`` and ``Info`` are ``NamedTuple``s with every field documented; no configuration and no key in State.
* Written for ONE chain (position shape ``[dim]``), never jitted here; the engine vmaps and jits. Kernels that
  need an ensemble (``replica_exchange``, ``ais``) take explicit leading axes.
* Sign convention: log p_β(x) = −β·energy_fn(x) + log_prior_fn(x); β is a traced argument.
* Every State has ``position`` [dim] and ``energy`` [] (E at the current position, *without* β), so the engine
  reads energies without recomputing them and changes β (tempering, AIS) without invalidating the state.
  Gradient kernels also cache ``energy_grad``, ``log_prior`` and ``log_prior_grad``.
* Every Info has ``acceptance_probability`` [] (1.0 for unadjusted kernels), ``is_accepted`` [] bool and
  ``is_divergent`` [] bool (NaN/inf energy or log ratio).
* Each sampling kernel declares ``SETTINGS`` (``settings.KernelSettings``: kind, default step size, adaptation
  target, gradient, manifold, which model attributes it takes, its options). ``engine/kernel_binding.py`` discovers every
  module of this package that defines ``SETTINGS`` and binds it to a model generically: a new kernel is one file
  (plus its test), with no edit to the engine.
* Continuous kernels: ``step(key, state, energy_fn, beta, log_prior_fn, step_size, ...)``.
  Discrete kernels (binary sites with ``values=(lo, hi)``): the model's cheap flip energies are passed in,
  ``delta_energy_fn(x, i)`` or ``delta_energy_all_fn(x)``.

Modules:
  continuous: ``rwm``, ``mala``, ``hmc`` (+ ``integrators``), ``langevin`` (ULA), ``sgld``, ``sphere``
  (moves on |x|² = dim), ``adaptation`` (step sizes for many chains × temperatures); ``settings`` (what a
  kernel declares about itself);
  discrete: ``flip_metropolis``, ``heat_bath``, ``block_gibbs`` (checkerboard / RBM layers);
  ensembles: ``replica_exchange``, ``ais``.
"""

from . import (
    adaptation,
    ais,
    block_gibbs,
    flip_metropolis,
    heat_bath,
    hmc,
    integrators,
    langevin,
    mala,
    replica_exchange,
    rwm,
    settings,
    sgld,
    sphere,
)
from .metropolis import Acceptance, metropolis_accept

__all__ = [
    "Acceptance",
    "metropolis_accept",
    "adaptation",
    "ais",
    "block_gibbs",
    "flip_metropolis",
    "heat_bath",
    "hmc",
    "integrators",
    "langevin",
    "mala",
    "replica_exchange",
    "rwm",
    "settings",
    "sgld",
    "sphere",
]
