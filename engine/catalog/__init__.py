"""The catalogue of built-in models, by name: the ONE model factory of the ``thermodl`` CLI and of sweeps.

``params`` holds the parameter table ``MODELS`` (traced vs static parameters, kinds, docs) and its validation;
``builders`` builds a model from a validated parameter dict. The disorder (couplings, patterns, data) is drawn
from the parameter ``disorder_seed`` and from nothing else.

    >>> model = build_model("sk", {"n": 16, "disorder_seed": 3})
    >>> sorted(traced_params("ising2d"))
    ['J', 'h']
"""

from ..io import load_npz_arrays
from .builders import build, build_model
from .params import (DISORDER_SEED, MODELS, BuiltModel, Param, model_names, model_params, model_signature,
                     option_flag, resolve_model_params, traced_params)

__all__ = ["Param", "MODELS", "BuiltModel", "DISORDER_SEED", "model_names", "model_params", "traced_params",
           "resolve_model_params", "build", "build_model", "model_signature", "load_npz_arrays", "option_flag"]
