"""File I/O of the package: the ONE atomic writer (text, JSON, netCDF), the ONE JSON converter, netCDF and .npz
reads.

Every file the package writes goes through ``atomic_output``: the data are written to a temporary file in the
target's folder, flushed to disk and renamed onto the target with ``os.replace`` (atomic on POSIX), so a crash or
SIGKILL leaves either the old file or the new one, never half of one. Experiments (``engine.registry``), the CLI
(``thermodl thermo --out``) and the sweep store (``engine.sweep.store``) all write through here.

``jsonable`` is the one converter from NumPy/JAX values to strict JSON (NaN/inf → null); ``canonical_json`` the one
deterministic serialisation used for hashes and dataset attributes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_output",
    "atomic_write_text",
    "atomic_write_json",
    "jsonable",
    "canonical_json",
    "netcdf_engine",
    "write_netcdf",
    "read_netcdf",
    "load_npz_arrays",
]


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Write a file atomically: yields a temporary path in the same folder, renamed onto ``path`` on success.

    The temporary name is ``.<stem>.<random>.partial<suffix>`` (it keeps ``path``'s suffix, so writers that infer
    the format from it still work); it is fsynced before the rename. If the body raises, the temporary file is
    removed and ``path`` is left untouched (absent, or its old content).

        with atomic_output("table.csv") as tmp:
            tmp.write_text(text)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # the data reach the disk before the rename makes them visible
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> the mode a plain open() would give
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    """Flush a folder's entries (the rename) to disk; a no-op where folders cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``Path(path)``."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 1) -> Path:
    """Write ``jsonable(obj)`` as JSON (sorted keys) to ``path`` atomically; returns ``Path(path)``."""
    return atomic_write_text(path, json.dumps(jsonable(obj), indent=indent, sort_keys=True, allow_nan=False))


# ------------------------------------------------------------------------------------------------ JSON
def jsonable(x: Any) -> Any:
    """``x`` with NumPy/JAX scalars and arrays turned into plain Python (NaN/inf -> None), for strict JSON.

    Dicts (keys as strings), lists and tuples (as lists) recurse; paths become strings; anything else unknown
    becomes ``str(x)``.
    """
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, (str, type(None))):
        return x
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    if isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        arr = np.asarray(x)
        return jsonable(arr.item() if arr.ndim == 0 else arr.tolist())
    return str(x)


def canonical_json(obj: Any) -> str:
    """Deterministic JSON of ``jsonable(obj)`` (sorted keys, no whitespace, floats by ``repr``), for hashing and
    for dataset attributes."""
    return json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"))


# ------------------------------------------------------------------------------------------------ netCDF
def _netcdf_safe(ds):
    """A copy of ``ds`` whose attributes are numbers/strings (netCDF cannot store bools, dicts or None)."""
    ds = ds.copy()
    for k, v in list(ds.attrs.items()):
        if isinstance(v, (bool, np.bool_)):
            ds.attrs[k] = int(v)
        elif isinstance(v, (dict, list, tuple)) or v is None:
            ds.attrs[k] = json.dumps(jsonable(v))
        elif isinstance(v, os.PathLike):
            ds.attrs[k] = os.fspath(v)
    return ds


def netcdf_engine() -> str:
    """``"h5netcdf"`` (netCDF-4) when its backend ``h5py`` is installed, else ``"scipy"`` (netCDF-3)."""
    try:
        import h5py  # noqa: F401
    except ImportError:
        return "scipy"
    return "h5netcdf"


def write_netcdf(ds, path: str | os.PathLike) -> Path:
    """Write an ``xarray.Dataset`` to ``path`` atomically (``atomic_output``): netCDF-4 through h5netcdf (needs
    ``h5py``), else netCDF-3 through SciPy (booleans as int8, 64-bit integers as int32, which netCDF-3 cannot
    store). Attributes netCDF cannot hold become numbers or JSON strings (bool → int, dict/list/None → JSON).

    The one netCDF writer of the package (experiments, ``thermodl thermo``, the sweep store).

    Returns:
        ``Path(path)``.
    """
    ds = _netcdf_safe(ds)
    engine = netcdf_engine()
    if engine == "scipy":
        for name, var in list(ds.variables.items()):
            if var.dtype == np.bool_:
                ds[name] = var.astype(np.int8)
            elif var.dtype.kind in "iu" and var.dtype.itemsize > 4:
                ds[name] = var.astype(np.int32)
    with atomic_output(path) as tmp:
        ds.to_netcdf(tmp, engine=engine)
    return Path(path)


def read_netcdf(path: str | os.PathLike):
    """Load a netCDF file (either format) fully into memory as an ``xarray.Dataset``; the file is closed."""
    import xarray as xr

    return xr.load_dataset(path)


# ------------------------------------------------------------------------------------------------ .npz
def load_npz_arrays(path: str | os.PathLike, keys: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """Named arrays from an .npz file, each checked finite; every failure is a one-line ``ValueError``
    starting with ``what`` (the flag or config key that gave the path)."""
    import zipfile

    from .validate import check_finite_array

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what}: file not found: {path}")
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as err:  # not an npz / corrupt zip / pickle
        raise ValueError(f"{what}: cannot read {path} as .npz ({' '.join(str(err).split())})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{what}: {path} is a single .npy array, not an .npz archive of named arrays")
    try:
        with f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise ValueError(f"{what}: {path} has no array {missing[0]!r} (it has: {', '.join(sorted(f.files))})")
            arrays = {k: np.asarray(f[k]) for k in keys}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        if str(err).startswith(what):  # our own message (missing key)
            raise
        raise ValueError(f"{what}: cannot read {path} as .npz ({' '.join(str(err).split())})") from None
    for k, v in arrays.items():
        check_finite_array(v, f"{path.name}:{k}")
    return arrays
