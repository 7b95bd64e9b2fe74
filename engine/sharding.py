"""The device mesh of a sweep: the chain axis is sharded over every local device along one mesh axis.

A sweep program computes many independent *lanes* (disorder sample × temperature × chain). Lanes never talk to
each other, so they can be split over devices with no communication: the global chain indices
``0 .. n_chains−1`` are laid out along the mesh axis ``"chains"`` (``NamedSharding(mesh, P("chains"))``) and every
device runs the same program (``jax.shard_map``) on its slice, with the model arrays, β values and point ids
replicated. Every random number of chain ``c`` comes from ``fold_in(point_key, c)`` with the GLOBAL index ``c``
(never from splitting a key by the local shard size), so a run on 8 devices gives the same numbers as a run on 1.

When ``n_chains`` is not a multiple of the device count the chain axis is padded with extra chains (global
indices ≥ n_chains) that are computed and dropped; they cannot change the kept chains because lanes are
independent.

Bitwise identity across device counts also needs identical *shapes* per device: XLA may sum a batched matrix
product (an energy xᵀJx over a batch of chains) in an order that depends on the batch size, which changes the
last bits. Sweep programs therefore process each device's chains in blocks of a fixed size (``lax.map`` over
blocks of ``block`` chains): with the same block size, 1 device and 8 devices run the very same block
computation and give bitwise identical numbers.

On CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (set before JAX is imported) gives 8 virtual
devices for testing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "CHAINS",
    "chain_mesh",
    "padded_size",
    "chain_indices",
    "replicate",
    "shard_over_chains",
    "describe_mesh",
]

CHAINS = "chains"
"""Name of the one mesh axis: lanes are split over devices along the chain axis."""


def chain_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-d mesh with axis ``"chains"`` over ``devices`` (default: all local devices).

    Args:
        devices: devices to use; ``None`` for ``jax.local_devices()``.
    Returns:
        ``jax.sharding.Mesh`` of shape ``[n_devices]``.
    """
    devs = list(jax.local_devices() if devices is None else devices)
    if not devs:
        raise ValueError("chain_mesh needs at least one device")
    return Mesh(np.array(devs), (CHAINS,))


def padded_size(n: int, mesh: Mesh, block: int = 1) -> int:
    """``n`` rounded up to a multiple of (number of devices on ``mesh``) × ``block``."""
    d = mesh.devices.size * int(block)
    return -(-int(n) // d) * d


def chain_indices(n_chains: int, mesh: Mesh, block: int = 1) -> jax.Array:
    """Global chain indices ``0 .. padded_size(n_chains, mesh, block)−1`` (int32), sharded along ``"chains"``."""
    n = padded_size(n_chains, mesh, block)
    return jax.device_put(np.arange(n, dtype=np.int32), NamedSharding(mesh, P(CHAINS)))


def replicate(tree, mesh: Mesh):
    """Put every leaf of ``tree`` on all devices of ``mesh`` (replicated)."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_over_chains(fn: Callable, mesh: Mesh, n_replicated: int) -> Callable:
    """Run ``fn`` on every device with its slice of the chain indices; jitted once.

    Args:
        fn: ``fn(*replicated, chain_ids [C_local]) -> pytree`` whose every output leaf has the chain axis
            FIRST (``[C_local, ...]``). It must treat chains independently (no reductions over the chain axis).
        mesh: from ``chain_mesh``.
        n_replicated: number of leading arguments that are replicated (models, β values, point ids, ...).

    Returns:
        ``g(*replicated, chain_ids [C]) -> pytree [C, ...]`` (jitted; outputs sharded along ``"chains"``).
        Pass ``chain_ids`` from ``chain_indices``.
    """
    in_specs = (P(),) * n_replicated + (P(CHAINS),)
    mapped = jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=P(CHAINS), check_vma=False)
    return jax.jit(mapped)


def describe_mesh(mesh: Mesh) -> str:
    """One line, e.g. ``"8 × cpu (mesh axis 'chains')"``."""
    kinds = sorted({d.platform for d in mesh.devices.flat})
    return f"{mesh.devices.size} × {'/'.join(kinds)} (mesh axis {CHAINS!r})"
