"""Checkpoints of long equilibrium runs: save the runner's carry every N chunks, resume bit-identically.

A checkpoint is ONE ``.npz`` file written atomically (``engine.io.atomic_output``: a SIGKILL leaves the previous
checkpoint or the new one, never half of one) holding every leaf of the runner's carry (kernel states, streamed
statistics, replica-exchange counters, step-size adaptation state — padding chains included) plus a JSON header:
the global step ``t`` reached, driver metadata (e.g. the parallel-tempering ladder and its history) and a
*fingerprint* of everything that determines the numbers (model arrays, key, β grid, kernel and options, run
lengths, chain layout). Random numbers depend only on global indices and ``t`` (``engine.keys``), so a run resumed
from step t continues exactly as the uninterrupted run would have, with any ``chunk_size``.

A checkpoint whose fingerprint or array layout does not match the run is refused with a clear ``ValueError``
naming the file (never silently reused); so is a file that cannot be read (truncated, garbage).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .io import atomic_output, canonical_json

__all__ = ["Checkpointer", "fingerprint"]

_FORMAT = 1


def fingerprint(**parts: Any) -> str:
    """SHA-256 over the canonical JSON of ``parts``; arrays (and pytrees of arrays, e.g. a model or a key) are
    hashed by dtype, shape and bytes."""
    h = hashlib.sha256()

    def arrays(x):
        leaves = jax.tree.leaves(x)
        for leaf in leaves:
            if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            a = np.ascontiguousarray(np.asarray(jax.device_get(leaf)))
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())

    plain = {}
    for name, value in sorted(parts.items()):
        if isinstance(value, (str, int, float, bool, type(None), tuple, list, dict)) and not _has_array(value):
            plain[name] = value
        else:
            h.update(name.encode())
            arrays(value)
    h.update(canonical_json(plain).encode())
    return h.hexdigest()


def _has_array(x) -> bool:
    return any(isinstance(leaf, (np.ndarray, jax.Array)) for leaf in jax.tree.leaves(x))


class Checkpointer:
    """Save / load the runner's carry at ``path``.

    Args:
        path: the checkpoint file (``.npz`` is appended when missing).
        every: save after every ``every`` compiled chunks (≥ 1).
        fingerprint: ``fingerprint(...)`` of the run's configuration.
    """

    def __init__(self, path: str | os.PathLike, *, every: int, fingerprint: str):
        path = Path(path)
        self.path = path if path.suffix == ".npz" else path.with_name(path.name + ".npz")
        if self.path.exists() and self.path.is_dir():
            raise ValueError(f"checkpoint {self.path} is a directory")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"checkpoint_every must be a positive int, got {every!r}")
        self.every = every
        self.fingerprint = fingerprint
        self._chunks = 0

    def load(self, carry_template) -> tuple[Any, dict] | None:
        """(carry, meta) from the file, placed like ``carry_template``; None when there is no checkpoint.

        Raises:
            ValueError: unreadable file, or a checkpoint of another run (fingerprint or layout mismatch).
        """
        if not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as f:
                meta = json.loads(bytes(f["__meta__"]).decode())
                leaves = [np.asarray(f[f"leaf_{i}"]) for i in range(int(meta["n_leaves"]))]
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as err:
            raise ValueError(f"checkpoint {self.path} cannot be read ({' '.join(str(err).split())[:120]}); "
                             "delete it to start the run afresh") from None
        if meta.get("format") != _FORMAT or meta.get("fingerprint") != self.fingerprint:
            raise ValueError(f"checkpoint {self.path} belongs to a different run (other model, key, β grid, kernel "
                             "or budget); refusing to reuse it — delete it or choose another checkpoint path")
        tmpl, treedef = jax.tree.flatten(carry_template)
        if len(tmpl) != len(leaves) or any(a.shape != t.shape or a.dtype != t.dtype for a, t in zip(leaves, tmpl)):
            raise ValueError(f"checkpoint {self.path} does not match this run's array layout (device count or "
                             "chain_block changed?); refusing to reuse it")
        placed = [jax.device_put(a, t.sharding) for a, t in zip(leaves, tmpl)]
        return jax.tree.unflatten(treedef, placed), meta

    def save(self, carry, t: int, **meta) -> None:
        """Write the carry reached at global step ``t`` (atomically)."""
        leaves = [np.asarray(jax.device_get(x)) for x in jax.tree.leaves(carry)]
        header = {"format": _FORMAT, "fingerprint": self.fingerprint, "t": int(t), "n_leaves": len(leaves), **meta}
        buf = {f"leaf_{i}": a for i, a in enumerate(leaves)}
        buf["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
        with atomic_output(self.path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **buf)

    def on_chunk(self, carry, t: int, **meta) -> None:
        """Called after every chunk: saves every ``every`` chunks."""
        self._chunks += 1
        if self._chunks % self.every == 0:
            self.save(carry, t, **meta)

