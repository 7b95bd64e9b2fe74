"""Block heat-bath (Gibbs) updates: all sites of a block of mutually non-interacting sites at once.

References: S. Geman and D. Geman, "Stochastic relaxation, Gibbs distributions, and the Bayesian restoration of
images", IEEE Trans. PAMI 6, 721 (1984) (Gibbs sampler, checkerboard / coding-set updates); G. E. Hinton,
"Training products of experts by minimizing contrastive divergence", Neural Comput. 14, 1771 (2002) (alternating
block Gibbs sampling of RBM layers).

When no two sites of a block interact, their conditional distributions given everything outside the block are
independent, so updating them simultaneously, each flipped with probability sigmoid(−β ΔE_i), is an exact Gibbs
update of the block. ``block_masks`` [B, dim] lists the blocks (checkerboard colours of a lattice, the visible and
hidden layers of an RBM); one ``step`` is one pass over the B blocks in order. The kernel cannot check that a
block is non-interacting: a block with interacting sites gives a wrong stationary distribution.

Sites take the two ``values = (lo, hi)``; flipping maps ``x_i -> lo + hi - x_i``. Convention 0·∞ = 0 (at β = 0
every site is redrawn uniformly). A NaN ΔE is divergent: that site is left unchanged.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from .flip_metropolis import _check_position, _check_values, _neg_beta_delta
from .settings import KernelSettings

__all__ = ["BlockGibbsState", "BlockGibbsInfo", "init", "step", "SETTINGS"]

SETTINGS = KernelSettings(
    kind="discrete",
    default_step_size=None,
    target_acceptance=None,
    needs_gradient=False,
    manifold=None,
    model_args=(("delta_energy_all_fn", "delta_energy_all"), ("block_masks", "block_masks()"), ("values", "values")),
    reference="Geman & Geman 1984; Hinton 2002",
)

# Up to this many blocks are unrolled in Python (one fusable XLA computation); longer lists use a rolled scan.
_MAX_UNROLL = 4


class BlockGibbsState(NamedTuple):
    """State of one chain.

    Fields:
        position: float [dim] — the configuration, sites in ``values``.
        energy: float [] — E(position) (without β), recomputed with ``energy_fn`` after each pass.
    """

    position: jax.Array
    energy: jax.Array


class BlockGibbsInfo(NamedTuple):
    """Diagnostics of one pass over the blocks.

    Fields:
        acceptance_probability: float [] — mean flip probability sigmoid(−β ΔE) over all site updates of the pass
            (a site in k blocks counts k times; 0 if the masks are empty).
        is_accepted: bool [] — at least one site flipped during the pass.
        is_divergent: bool [] — some ΔE of an updated site was NaN, or the recomputed energy is NaN.
        num_flips: int32 [] — number of site flips in the pass.
    """

    acceptance_probability: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array
    num_flips: jax.Array


def init(position: jax.Array, energy_fn: Callable) -> BlockGibbsState:
    """Start a chain at ``position``.

    Args:
        position: float [dim] — initial configuration (sites in ``values``).
        energy_fn: ``x [dim] -> []`` energy.

    Returns:
        ``BlockGibbsState`` with the energy evaluated once.
    """
    position = _check_position(position, "block_gibbs.init")
    return BlockGibbsState(position, jnp.asarray(energy_fn(position)))


def step(
    key: jax.Array,
    state: BlockGibbsState,
    energy_fn: Callable,
    beta: jax.Array,
    delta_energy_all_fn: Callable,
    block_masks: jax.Array,
    values: tuple[float, float],
) -> tuple[BlockGibbsState, BlockGibbsInfo]:
    """One pass over the blocks; in block b every site with ``block_masks[b]`` is heat-bath updated at once.

    For block b: ΔE = ``delta_energy_all_fn(x)`` [dim] on the current x, site i of the block flips when
    u_i < sigmoid(−β ΔE_i), u ~ U[0, 1)^dim. Sites outside the block are untouched.

    Args:
        key: PRNG key, consumed (one uniform per site and block, drawn up front).
        state: ``BlockGibbsState`` of one chain.
        energy_fn: ``x [dim] -> []``; evaluated once at the end of the pass (no accumulated float drift).
        beta: float [] inverse temperature (traced).
        delta_energy_all_fn: ``x [dim] -> [dim]``, entry i = E(x with site i flipped alone) − E(x).
        block_masks: bool [B, dim] — row b marks the sites of block b; sites within a row must not interact.
            B is static (the shape); the mask values may be traced.
        values: static ``(lo, hi)`` site values.

    Returns:
        ``(BlockGibbsState, BlockGibbsInfo)``.
    """
    lo, hi = _check_values(values, "block_gibbs.step")
    x0 = _check_position(state.position, "block_gibbs.step")
    dim = x0.shape[0]
    masks = jnp.asarray(block_masks)
    if masks.ndim != 2 or masks.shape[1] != dim:
        raise ValueError(f"block_gibbs.step: block_masks must have shape [B, {dim}], got shape {masks.shape}")
    if masks.shape[0] == 0:
        raise ValueError("block_gibbs.step: block_masks must hold at least one block, got shape (0, dim)")
    masks = masks.astype(bool)
    num_blocks = masks.shape[0]
    u = jax.random.uniform(key, (num_blocks, dim), dtype=x0.dtype)
    p_dtype = jnp.result_type(x0.dtype, jnp.float32)

    def update_block(carry, block):
        x, sum_p, n_flips, divergent = carry
        mask, u_b = block
        de = delta_energy_all_fn(x)
        p_flip = jax.nn.sigmoid(_neg_beta_delta(beta, de))  # NaN for a NaN ΔE: the comparison is False
        flip = mask & (u_b < p_flip)
        x = jnp.where(flip, lo + hi - x, x)
        sum_p = sum_p + jnp.sum(jnp.where(mask, jnp.nan_to_num(p_flip, nan=0.0), 0.0), dtype=p_dtype)
        n_flips = n_flips + jnp.sum(flip, dtype=jnp.int32)
        divergent = divergent | jnp.any(mask & jnp.isnan(de))
        return (x, sum_p, n_flips, divergent), None

    carry = (x0, jnp.zeros((), p_dtype), jnp.zeros((), jnp.int32), jnp.zeros((), bool))
    if num_blocks <= _MAX_UNROLL:  # straight-line code: XLA fuses across the blocks
        for b in range(num_blocks):
            carry, _ = update_block(carry, (masks[b], u[b]))
    else:
        carry, _ = jax.lax.scan(update_block, carry, (masks, u))
    x, sum_p, n_flips, divergent = carry
    energy = jnp.asarray(energy_fn(x)).astype(jnp.result_type(state.energy))
    num_updates = jnp.sum(masks, dtype=jnp.int32)
    info = BlockGibbsInfo(
        acceptance_probability=jnp.where(num_updates > 0, sum_p / jnp.maximum(num_updates, 1), 0.0).astype(p_dtype),
        is_accepted=n_flips > 0,
        is_divergent=divergent | jnp.isnan(energy),
        num_flips=n_flips,
    )
    return BlockGibbsState(x, energy), info
