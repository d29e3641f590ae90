"""Readers of the standard on-disk formats of CIFAR-10, CIFAR-100 and SVHN (nothing is downloaded).

``cifar10``
    ``<data_dir>/cifar-10-batches-py/data_batch_1..5`` and ``test_batch`` (python pickles with
    ``data`` (N, 3072) uint8 in CHW order and ``labels``); ``data_dir`` may also be that folder.
``cifar100``
    ``<data_dir>/cifar-100-python/train`` and ``test`` (``data`` and ``fine_labels``, 100 classes).
``svhn``
    ``<data_dir>/train_32x32.mat`` and ``test_32x32.mat`` (MATLAB files: ``X`` (32, 32, 3, N) uint8,
    ``y`` (N, 1) with digit 0 stored as label 10, mapped back to 0), read with scipy.io.loadmat.

A missing ``data_dir``, a missing, unreadable or malformed file raises
:class:`~toymodels.errors.ConfigError` for the field ``data_dir``.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .images import ImageData

__all__ = ["read_cifar10", "read_cifar100", "read_svhn"]


def _resolve_dir(data_dir, sub: str | None, name: str) -> Path:
    if data_dir is None:
        raise ConfigError("data_dir", f"is required for dataset {name!r} (a folder with the standard files; "
                         "nothing is downloaded)")
    d = Path(data_dir).expanduser()
    if not d.is_dir():
        raise ConfigError("data_dir", "must be an existing directory", str(data_dir))
    if sub is not None and (d / sub).is_dir():
        d = d / sub
    return d


def _need(path: Path, name: str) -> Path:
    if not path.is_file():
        raise ConfigError("data_dir", f"must hold the files of dataset {name!r}; missing file {str(path)!r}")
    return path


def _unpickle(path: Path, name: str) -> dict:
    try:
        with open(path, "rb") as fh:
            obj = pickle.load(fh, encoding="bytes")
    except Exception as exc:  # corrupted, truncated or not a pickle
        raise ConfigError("data_dir", f"must hold readable files of dataset {name!r}; cannot read {str(path)!r} ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise ConfigError("data_dir", f"must hold readable files of dataset {name!r}; {str(path)!r} is not a CIFAR batch (expected a dict)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _cifar_arrays(path: Path, label_key: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path, name)
    if "data" not in d or label_key not in d:
        raise ConfigError("data_dir", f"must hold readable files of dataset {name!r}; {str(path)!r} lacks the keys 'data' and {label_key!r}")
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key], dtype=np.int64).ravel()
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise ConfigError("data_dir", f"must hold readable files of dataset {name!r}; {str(path)!r} must hold data (N, 3072) and N labels, got "
                         f"{data.shape} and {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def _to_float(x_u8: np.ndarray) -> np.ndarray:
    return np.asarray(x_u8, dtype=np.float64) / 255.0


def _check_labels(y: np.ndarray, K: int, name: str) -> None:
    if y.size and (y.min() < 0 or y.max() >= K):
        raise ConfigError("data_dir", f"must hold readable files of dataset {name!r}; labels must lie in [0, {K - 1}], got [{y.min()}, {y.max()}]")


def read_cifar10(data_dir) -> ImageData:
    """CIFAR-10 from ``data_dir`` (containing ``cifar-10-batches-py/`` or being that folder)."""
    d = _resolve_dir(data_dir, "cifar-10-batches-py", "cifar10")
    parts = [_cifar_arrays(_need(d / f"data_batch_{i}", "cifar10"), "labels", "cifar10") for i in range(1, 6)]
    xte, yte = _cifar_arrays(_need(d / "test_batch", "cifar10"), "labels", "cifar10")
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    for y in (ytr, yte):
        _check_labels(y, 10, "cifar10")
    return ImageData("cifar10", _to_float(xtr), ytr, _to_float(xte), yte, 10, {"data_dir": str(d)})


def read_cifar100(data_dir) -> ImageData:
    """CIFAR-100 (fine labels) from ``data_dir`` (containing ``cifar-100-python/`` or being it)."""
    d = _resolve_dir(data_dir, "cifar-100-python", "cifar100")
    xtr, ytr = _cifar_arrays(_need(d / "train", "cifar100"), "fine_labels", "cifar100")
    xte, yte = _cifar_arrays(_need(d / "test", "cifar100"), "fine_labels", "cifar100")
    for y in (ytr, yte):
        _check_labels(y, 100, "cifar100")
    return ImageData("cifar100", _to_float(xtr), ytr, _to_float(xte), yte, 100, {"data_dir": str(d)})


def _svhn_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:
        m = loadmat(str(path))
    except Exception as exc:
        raise ConfigError("data_dir", f"must hold readable files of dataset 'svhn'; cannot read {str(path)!r} ({type(exc).__name__})") from None
    if "X" not in m or "y" not in m:
        raise ConfigError("data_dir", f"must hold readable files of dataset 'svhn'; {str(path)!r} lacks the variables 'X' and 'y'")
    X, y = np.asarray(m["X"]), np.asarray(m["y"]).astype(np.int64).ravel()
    if X.ndim != 4 or X.shape[:3] != (32, 32, 3) or X.shape[3] != y.shape[0]:
        raise ConfigError("data_dir", f"must hold readable files of dataset 'svhn'; {str(path)!r} must hold X (32, 32, 3, N) and N labels, got "
                         f"{X.shape} and {y.shape}")
    y = np.where(y == 10, 0, y)
    _check_labels(y, 10, "svhn")
    return np.ascontiguousarray(X.transpose(3, 2, 0, 1)), y


def read_svhn(data_dir) -> ImageData:
    """SVHN (cropped digits) from ``train_32x32.mat`` / ``test_32x32.mat`` in ``data_dir``."""
    d = _resolve_dir(data_dir, None, "svhn")
    xtr, ytr = _svhn_split(_need(d / "train_32x32.mat", "svhn"))
    xte, yte = _svhn_split(_need(d / "test_32x32.mat", "svhn"))
    return ImageData("svhn", _to_float(xtr), ytr, _to_float(xte), yte, 10, {"data_dir": str(d)})
