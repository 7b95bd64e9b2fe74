"""Replica-exchange (parallel-tempering) swaps between neighbouring temperatures.

References: R. H. Swendsen and J.-S. Wang, "Replica Monte Carlo simulation of spin glasses", Phys. Rev. Lett. 57,
2607 (1986); C. J. Geyer, "Markov chain Monte Carlo maximum likelihood", Computing Science and Statistics (1991);
K. Hukushima and K. Nemoto, J. Phys. Soc. Jpn. 65, 1604 (1996). Deterministic even/odd alternation (the
non-reversible scheme): T. Okabe, M. Kawata, Y. Okamoto, M. Mikami, Chem. Phys. Lett. 335, 435 (2001);
S. Syed, A. Bouchard-Côté, G. Deligiannidis, A. Doucet, "Non-reversible parallel tempering", JRSS B 84, 321 (2022).

The ensemble has R temperature *slots*; slot k runs at ``betas[k]`` and holds one configuration with energy
``energies[k]``. A round proposes to exchange the configurations of slots (k, k+1) for every k with
k ≡ parity (mod 2) (disjoint pairs, so all are decided independently) and accepts each with probability
min(1, exp((β_k − β_{k+1})(E_k − E_{k+1}))), which leaves the product of the R Boltzmann distributions invariant.
Alternating parity 0, 1, 0, 1, ... between rounds gives the non-reversible (DEO) scheme; drawing it at random
gives the reversible one. The betas need not be sorted.

This module is the ensemble exception to "one chain per kernel": the replica axis R is explicit. For C
independent PT chains, vmap ``swap_permutation`` over the chain axis with one key per chain (``fold_in`` on the
global chain index) and apply the permutations with ``jax.vmap(apply_permutation, in_axes=(1, 0), out_axes=1)``
for states laid out ``[R, C, ...]``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .metropolis import metropolis_accept

__all__ = ["SwapInfo", "swap_permutation", "apply_permutation"]


class SwapInfo(NamedTuple):
    """Outcome of one round of neighbour swaps; entry k refers to the slot pair (k, k+1).

    Fields:
        acceptance_probability: float [R−1] — min(1, exp((β_k − β_{k+1})(E_k − E_{k+1}))) for proposed pairs;
            0 for pairs not proposed this round and for NaN log ratios (never NaN itself).
        is_proposed: bool [R−1] — k ≡ parity (mod 2).
        is_accepted: bool [R−1] — the pair was proposed and its configurations exchanged.
        is_divergent: bool [R−1] — proposed pair with a NaN log ratio (e.g. both energies +inf); rejected.
    """

    acceptance_probability: jax.Array
    is_proposed: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array


def swap_permutation(
    key: jax.Array, energies: jax.Array, betas: jax.Array, parity: jax.Array
) -> tuple[jax.Array, SwapInfo]:
    """Decide one round of neighbour swaps and return the permutation of configurations over slots.

    Args:
        key: PRNG key, consumed (one uniform per pair).
        energies: float [R] — E of the configuration currently in each slot (without β).
        betas: float [R] — inverse temperature of each slot (traced).
        parity: int [] 0 or 1 (traced) — propose the pairs (k, k+1) with k ≡ parity (mod 2).

    Returns:
        ``(perm, info)``: perm int32 [R], the configuration that slot k holds after the round is the one slot
        ``perm[k]`` held before (apply with ``apply_permutation``); ``info`` a ``SwapInfo`` with [R−1] fields.
    """
    energies = jnp.asarray(energies)
    betas = jnp.asarray(betas)
    if energies.ndim != 1:
        raise ValueError(f"swap_permutation: energies must have shape [R], got shape {energies.shape}")
    if betas.shape != energies.shape:
        raise ValueError(
            f"swap_permutation: betas must have the shape of energies {energies.shape}, got shape {betas.shape}"
        )
    if jnp.ndim(parity) != 0:
        raise ValueError(f"swap_permutation: parity must be a scalar 0 or 1, got shape {jnp.shape(parity)}")
    num_slots = energies.shape[0]
    if num_slots < 2:
        empty = jnp.zeros((0,), bool)
        ratio_dtype = jnp.result_type(energies, betas, jnp.float32)
        return jnp.zeros((num_slots,), jnp.int32), SwapInfo(jnp.zeros((0,), ratio_dtype), empty, empty, empty)

    pair = jnp.arange(num_slots - 1)
    is_proposed = (pair % 2) == (jnp.asarray(parity) % 2)
    log_ratio = (betas[:-1] - betas[1:]) * (energies[:-1] - energies[1:])
    # Equal temperatures: the swap is always accepted (0·∞ = 0), even between infinite energies.
    same_beta = (betas[:-1] == betas[1:]) & ~jnp.isnan(energies[:-1]) & ~jnp.isnan(energies[1:])
    log_ratio = jnp.where(same_beta, 0.0, log_ratio)
    acc = jax.vmap(metropolis_accept)(jax.random.split(key, num_slots - 1), log_ratio)
    is_accepted = is_proposed & acc.is_accepted
    acceptance_probability = jnp.where(is_proposed, acc.acceptance_probability, 0.0)

    # Proposed pairs are disjoint, so slot k moves at most once: right if pair k swaps, left if pair k−1 does.
    slots = jnp.arange(num_slots, dtype=jnp.int32)
    from_right = jnp.concatenate([is_accepted, jnp.zeros((1,), bool)])
    from_left = jnp.concatenate([jnp.zeros((1,), bool), is_accepted])
    perm = jnp.where(from_right, slots + 1, jnp.where(from_left, slots - 1, slots))
    info = SwapInfo(acceptance_probability, is_proposed, is_accepted, is_proposed & acc.is_divergent)
    return perm, info


def apply_permutation(tree: Any, perm: jax.Array) -> Any:
    """Permute every leaf of a pytree along its leading (slot) axis: ``new_leaf[k] = leaf[perm[k]]``.

    Args:
        tree: pytree whose leaves all have leading axis R (e.g. a kernel state of R replicas).
        perm: int [R] permutation from ``swap_permutation``.

    Returns:
        The pytree with the same structure, shapes and dtypes, leaves reordered along axis 0.
    """
    perm = jnp.asarray(perm)
    if perm.ndim != 1:
        raise ValueError(f"apply_permutation: perm must have shape [R], got shape {perm.shape}")

    def take(leaf):
        leaf = jnp.asarray(leaf)
        if leaf.ndim == 0 or leaf.shape[0] != perm.shape[0]:
            raise ValueError(
                f"apply_permutation: every leaf needs leading axis R={perm.shape[0]}, got shape {leaf.shape}"
            )
        return jnp.take(leaf, perm, axis=0)

    return jax.tree.map(take, tree)
