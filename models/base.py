"""The model protocol: what every thermodl model provides to the engine.

A model is an immutable **pytree** (``flax.struct.dataclass``): its arrays (couplings, data, teacher weights,
J, h, ...) are leaves, so they are *traced* by ``jax.jit`` and a new disorder sample or data set never
recompiles; its sizes and functions are static fields (``struct.field(pytree_node=False)``). Stacking many
models of one shape along a leading axis (``stack_models``) gives a batch of disorder samples that the engine
vmaps over.

Every model has

==============================  =====================================================================
``kind``                        ``"discrete"`` or ``"continuous"`` (static class attribute)
``dim``                         number of degrees of freedom; a configuration ``x`` has shape ``[dim]``
``energy(x) -> []``             the energy E(x) of one configuration (float)
``sample_reference(key)``       one draw ``[dim]`` from the β = 0 ensemble (uniform states / the prior)
``log_reference_partition()``   log Z(0): ``dim * log 2`` for binary discrete models (counting measure),
                                0 for continuous models (normalised prior)
``exact_log_partition(beta)``   optional: exact log Z(β) (closed form / summed out / enumerated);
                                models without one do not define it (see ``has_exact``)
==============================  =====================================================================

Discrete models (binary variables, counting measure, Z(β) = Σ_s exp(−β E(s))) also have

==============================  =====================================================================
``values``                      static ``(lo, hi)``, e.g. ``(-1.0, 1.0)`` spins or ``(0.0, 1.0)`` bits;
                                flipping site i maps ``x_i -> lo + hi - x_i``
``delta_energy(x, i) -> []``    E(x with site i flipped) − E(x), cheap (O(degree))
``delta_energy_all(x) -> [dim]`` the same for every site, each flipped alone
``block_masks() -> [B, dim]``   optional: boolean masks of sets of mutually non-interacting sites
                                (checkerboard colours, RBM layers), for block heat-bath updates
==============================  =====================================================================

Continuous models (Z(β) = ∫ prior(w) exp(−β E(w)) dw with a *normalised* prior) also have

==============================  =====================================================================
``log_prior(x) -> []``          normalised log prior density (w.r.t. Lebesgue measure on R^dim, or w.r.t.
                                the normalised uniform measure on the sphere when ``manifold="sphere"``)
``manifold``                    static ``"euclidean"`` or ``"sphere"`` (|x|² = dim)
``unravel(x) -> pytree``        optional: the flat vector back to the flax params pytree
==============================  =====================================================================

Weight-space ensembles with data also provide ``n_data`` and ``energy_minibatch(x, idx)`` (the unbiased
estimate (P/B) Σ_{μ∈idx} loss_μ) for SGLD, and ``test_error(x)`` (Gibbs generalisation error on held-out data)
when held-out data were given.

Sign convention everywhere: log p_β(x) = −β·E(x) + log prior(x); β is an explicit, traced argument.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DISCRETE",
    "CONTINUOUS",
    "has_exact",
    "stack_models",
    "enumerate_states",
    "flip",
    "log_reference_binary",
]

DISCRETE = "discrete"
CONTINUOUS = "continuous"


def has_exact(model: Any) -> bool:
    """True when ``model`` offers its own exact ``log Z(β)`` (the protocol's ``exact_log_partition``: closed form,
    summed out or enumerated by the model).

    This is the ``"closed_form"`` case of ``engine.exact.exact_source`` and must stay identical to it (a model
    may refuse by raising ``models.exact.ExactUnavailableError`` or another ``ValueError``); whether *any* exact
    value exists, including generic enumeration of small discrete models, is ``engine.exact.has_exact_value``.
    """
    try:
        return callable(getattr(model, "exact_log_partition", None))
    except ValueError:  # a model may refuse (e.g. Ising2D with h != 0 on a wide lattice)
        return False


def stack_models(models: list) -> Any:
    """Stack models of one type and shape along a new leading (disorder) axis, for ``jax.vmap``."""
    if not models:
        raise ValueError("stack_models needs at least one model")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *models)


def flip(x: jax.Array, i: jax.Array, values: tuple[float, float]) -> jax.Array:
    """Flip binary site ``i`` of configuration ``x`` ([dim]) whose sites take the two ``values``."""
    lo, hi = values
    return x.at[i].set(lo + hi - x[i])


def enumerate_states(dim: int, values: tuple[float, float] = (-1.0, 1.0), dtype=jnp.float32) -> jax.Array:
    """All ``2**dim`` binary configurations, shape ``[2**dim, dim]`` (row k is k in binary, site 0 first).

    Meant for exact checks on small systems (dim ≲ 24); raises for larger ones.
    """
    if dim <= 0:
        raise ValueError(f"enumerate_states: dim must be positive, got {dim}")
    if dim > 26:
        raise ValueError(f"enumerate_states: 2**{dim} states is too many to enumerate (limit 2**26)")
    lo, hi = values
    bits = (np.arange(2**dim, dtype=np.int64)[:, None] >> np.arange(dim)[None, :]) & 1
    return jnp.asarray(np.where(bits == 1, hi, lo), dtype=dtype)


def log_reference_binary(dim: int) -> float:
    """log Z(0) = dim·log 2 of a binary model under the counting measure."""
    return dim * math.log(2.0)

