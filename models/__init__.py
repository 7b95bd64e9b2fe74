"""Models: what is sampled. Spin systems with quenched couplings and flax weight ensembles (see ``base``)."""

from . import base
from .base import enumerate_states, has_exact, stack_models

__all__ = ["base", "enumerate_states", "has_exact", "stack_models"]
