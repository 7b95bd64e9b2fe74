"""Result store of a sweep: atomic per-unit netCDF parts, a manifest, resume, and the final dataset.

Layout for a sweep written to ``OUT.nc``::

    OUT.nc.parts/manifest.json       {"config_hash", "config", "units": {unit_key: {"file", "params"}}}
    OUT.nc.parts/unit-<unit_key>.nc  one completed unit (a chunk of one compile group's points)
    OUT.nc                           the final dataset (written last; then the parts folder is removed)

Every file is written to a temporary name in the same folder, flushed to disk and renamed with ``os.replace``
(``engine.io``: ``atomic_write_json``, ``write_netcdf``), which is atomic: a sweep killed at any moment leaves each
unit either complete or absent, never half-written.
``unit_key`` is a hash of the config hash and the unit's parameters, so a unit file can only be reused by the
very computation that produced it. A unit file that exists is complete even when the kill came before the
manifest was updated (the manifest is rebuilt from the files on open).

A different config writing to the same path is refused (``ValueError``) unless ``force=True``, which deletes
the old results first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import xarray as xr

from ..io import atomic_write_json, canonical_json, jsonable, read_netcdf, write_netcdf

__all__ = ["SweepStore", "config_hash", "unit_key", "package_versions"]

_MANIFEST = "manifest.json"
_FORMAT = 1


def config_hash(config: Mapping) -> str:
    """SHA-256 (hex, 16 chars) of the canonical JSON of a (normalised) sweep config."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


def unit_key(cfg_hash: str, unit_params: Mapping) -> str:
    """Key of one unit: a hash of the config hash and the unit's parameters (its grid points)."""
    return hashlib.sha256((cfg_hash + canonical_json(unit_params)).encode()).hexdigest()[:20]


def package_versions() -> dict[str, str]:
    """Versions of thermodl, jax, flax, numpy and xarray (for the dataset attrs)."""
    from importlib import metadata

    out = {}
    for name in ("thermodl", "jax", "flax", "numpy", "xarray"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


class SweepStore:
    """Completed units of one sweep on disk, keyed by the config hash.

    Args:
        out: path of the final netCDF file.
        cfg_hash: ``config_hash`` of the normalised config.
        config_json: the config as a JSON string (kept in the manifest, for the refusal message).
        resume: reuse completed units of the same config (False: start again, deleting them).
        force: overwrite results of a *different* config at ``out`` (otherwise ``ValueError``).
    """

    def __init__(self, out: str | os.PathLike, cfg_hash: str, config_json: str, *, resume: bool = True,
                 force: bool = False):
        self.out = Path(out)
        self.parts = self.out.with_name(self.out.name + ".parts")
        self.cfg_hash = cfg_hash
        self.config_json = config_json
        self._units: dict[str, dict] = {}
        self._open(resume=resume, force=force)

    # -------------------------------------------------------------------------------------- opening
    def _refuse(self, where: Path, other: str) -> None:
        raise ValueError(
            f"{where} holds results of a different sweep config (hash {other} != {self.cfg_hash}); "
            "use force=True (CLI: --force) to overwrite it, or choose a new output path"
        )

    def _open(self, *, resume: bool, force: bool) -> None:
        if self.out.exists():
            try:
                other = str(read_netcdf(self.out).attrs.get("config_hash", "?"))
            except Exception:  # noqa: BLE001 — an unreadable file is not ours to overwrite silently
                other = "unreadable"
            if other != self.cfg_hash and not force:
                self._refuse(self.out, other)
        manifest = self.parts / _MANIFEST
        if manifest.exists():
            try:
                other = json.loads(manifest.read_text()).get("config_hash", "?")
            except (OSError, ValueError):
                other = "unreadable"
            if other != self.cfg_hash and not force:
                self._refuse(self.parts, other)
            if other != self.cfg_hash or not resume:
                shutil.rmtree(self.parts)
        elif self.parts.exists():
            # unit files without a manifest cannot be attributed to a config
            if any(self.parts.glob("unit-*.nc")) and not force:
                self._refuse(self.parts, "unknown (no manifest)")
            shutil.rmtree(self.parts)
        if force and self.out.exists():
            self.out.unlink()
        self.parts.mkdir(parents=True, exist_ok=True)
        for tmp in [*self.parts.glob(".*.partial*"), *self.parts.glob(".*.tmp")]:  # left by a kill mid-write
            tmp.unlink(missing_ok=True)
        units = {}
        if manifest.exists():
            units = json.loads(manifest.read_text()).get("units", {})
        # adopt unit files written just before a kill that came before the manifest update
        for f in self.parts.glob("unit-*.nc"):
            key = f.stem[len("unit-"):]
            units.setdefault(key, {"file": f.name, "params": None})
        self._units = {k: v for k, v in units.items() if (self.parts / v["file"]).exists()}
        self._write_manifest()

    def _write_manifest(self) -> None:
        atomic_write_json(self.parts / _MANIFEST, {
            "format": _FORMAT, "config_hash": self.cfg_hash, "config": self.config_json, "units": self._units,
        })

    # -------------------------------------------------------------------------------------- units
    def completed(self) -> set[str]:
        """Keys of the units already on disk."""
        return set(self._units)

    def has_unit(self, key: str) -> bool:
        """Whether unit ``key`` is complete on disk."""
        return key in self._units

    def save_unit(self, key: str, ds: xr.Dataset, params: Mapping | None = None) -> None:
        """Write one completed unit atomically and record it in the manifest."""
        name = f"unit-{key}.nc"
        write_netcdf(ds, self.parts / name)
        self._units[key] = {"file": name, "params": jsonable(params)}
        self._write_manifest()

    def load_unit(self, key: str) -> xr.Dataset:
        """The dataset of a completed unit."""
        return read_netcdf(self.parts / self._units[key]["file"])

    # -------------------------------------------------------------------------------------- final
    def load_final(self) -> xr.Dataset | None:
        """The final dataset if it exists and was produced by this config, else ``None``."""
        if not self.out.exists():
            return None
        ds = read_netcdf(self.out)
        return ds if str(ds.attrs.get("config_hash")) == self.cfg_hash else None

    def finalize(self, ds: xr.Dataset, *, keep_parts: bool = False) -> None:
        """Write the final dataset atomically, then remove the parts folder (unless ``keep_parts``)."""
        write_netcdf(ds, self.out)
        if not keep_parts:
            shutil.rmtree(self.parts, ignore_errors=True)
