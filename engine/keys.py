"""PRNG keys: the ONE place that turns a user's key or seed into a key, and the ONE index scheme for chains.

Rule: every random number of a chain comes from ``fold(key, *global_indices)`` — never from splitting a key by a
local batch size — so results do not depend on chunking, blocking or the number of devices.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

__all__ = ["as_key", "fold"]


def as_key(key: Any, name: str = "key") -> jax.Array:
    """A ``jax.random.key`` from a typed key, a raw uint32 key or an int seed.

    Raises:
        ValueError: None, a bool, a float, a string or anything else that is not a key or an int seed.
    """
    if key is None:
        raise ValueError(f"{name} must be a jax.random.key (or an int seed), got None")
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        if int(key) < 0:
            raise ValueError(f"{name}: an int seed must be >= 0, got {int(key)}")
        return jax.random.key(int(key))
    if isinstance(key, jax.Array):
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            return key
        if key.dtype == np.uint32 and key.shape == (2,):
            return jax.random.wrap_key_data(key)
    raise ValueError(f"{name} must be a jax.random.key(seed) or an int seed, got {type(key).__name__} {key!r}"[:200])


def fold(key: jax.Array, *indices) -> jax.Array:
    """``fold_in(... fold_in(key, i0) ..., in)``: the key of a global index path (traced indices allowed)."""
    for i in indices:
        key = jax.random.fold_in(key, i)
    return key
