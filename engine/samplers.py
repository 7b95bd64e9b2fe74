"""Bind a kernel to a model: the per-chain ``init`` / ``step`` pair every engine loop uses.

INTERFACE (fixed; the implementation is being written):

    class Sampler(NamedTuple):
        name: str                      # kernel name, e.g. "hmc", "block_gibbs"
        init: Callable                 # (x [dim]) -> kernel State   (one chain)
        step: Callable                 # (key, state, beta [], step_size []) -> (State, Info)
                                       #   one "step" = one kernel step (continuous) or one sweep over all
                                       #   sites (discrete kernels); step_size is ignored by discrete kernels
        default_step_size: float
        target_acceptance: float|None  # for step-size adaptation; None = nothing to adapt

    def make_sampler(model, kernel: str = "auto", **options) -> Sampler

``kernel="auto"`` picks: discrete model with ``block_masks`` -> "block_gibbs"; other discrete -> "heat_bath";
continuous on the sphere -> "sphere"; continuous, differentiable -> "hmc"; otherwise "rwm".
Unknown names raise ``ValueError`` listing the valid ones.
"""
