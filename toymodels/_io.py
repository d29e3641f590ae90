"""Atomic result files: write to a temporary file in the target folder, then rename.

A crash or Ctrl-C mid-write never leaves a truncated result behind, and readers never see a
half-written file (``os.replace`` is atomic on POSIX within one file system).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["atomic_write", "write_json", "save_npz", "save_figure", "to_jsonable", "load_npz_arrays"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, writer: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``writer(fh)`` on a temporary file next to ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600; a result file gets the mode an ordinary open() would give it
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays (recursively) to JSON types; NaN and ±inf become ``None``
    so that the output is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return x if np.isfinite(x) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    return atomic_write(path, lambda fh: np.savez(fh, **arrays))


def save_figure(fig, path: str | os.PathLike, **kwargs) -> Path:
    """Save a matplotlib figure atomically; the format follows the suffix of ``path``."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    kwargs.setdefault("dpi", 120)
    kwargs.setdefault("bbox_inches", "tight")
    return atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, **kwargs))


def load_npz_arrays(path: str | os.PathLike, field: str, required: tuple = (), optional: tuple = (),
                    numeric: bool = True) -> dict:
    """The arrays ``required`` (+ those of ``optional`` present) of the ``.npz`` file ``path``.

    The one loader for user-supplied ``.npz`` inputs: a missing, unreadable, corrupt or bare-array
    (``.npy`` content) file, a missing key, a non-numeric or non-finite array raises
    :class:`~toymodels.errors.ConfigError` for ``field`` (the parameter that named the file). Numeric
    arrays are returned as C-contiguous float64 (``numeric=False``: as stored).
    """
    from .errors import ConfigError

    need = "must be a readable .npz file with arrays " + ", ".join(required) + (
        f" (optional: {', '.join(optional)})" if optional else "")
    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise ConfigError(field, need + "; no such file", str(path))
    try:
        z = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - corrupt, truncated, not numpy, pickled object arrays
        raise ConfigError(field, need + f"; it is not readable as .npz ({type(exc).__name__})", str(path)) from None
    if not hasattr(z, "files"):
        raise ConfigError(field, need + "; it holds a single array, not an .npz archive", str(path))
    out = {}
    with z:
        for key in (*required, *(k for k in optional if k in z.files)):
            if key not in z.files:
                raise ConfigError(field, need + f"; array {key!r} is missing", str(path))
            try:
                a = z[key]
            except Exception as exc:  # noqa: BLE001 - a damaged member
                raise ConfigError(field, need + f"; array {key!r} is unreadable ({type(exc).__name__})",
                                  str(path)) from None
            if numeric:
                if a.dtype.kind not in "biuf":
                    raise ConfigError(field, need + f"; array {key!r} must be numeric, not {a.dtype}", str(path))
                a = np.ascontiguousarray(a, dtype=np.float64)
                if not np.all(np.isfinite(a)):
                    raise ConfigError(field, need + f"; array {key!r} contains NaN or inf", str(path))
            out[key] = a
    return out
