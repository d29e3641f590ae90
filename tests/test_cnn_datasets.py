"""Readers of toymodels.cnn.datasets on tiny fake files written in the standard formats (CIFAR python
pickles, SVHN .mat), and the embedded synthetic generator. Nothing is downloaded."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.io import savemat

from toymodels._cli import UsageError
from toymodels.cnn.datasets import (DATASETS, load_dataset, make_synthetic, read_cifar10, read_cifar100,
                                    read_svhn)


def _cifar_batch(rng, n, label_key, K, bytes_keys=True):
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, K, size=n).tolist()
    d = {"data": data, label_key: labels, "batch_label": "fake"}
    if bytes_keys:  # the real files are python-2 pickles whose keys load as bytes
        d = {k.encode(): v for k, v in d.items()}
    return d, data, np.array(labels)


def _write_pickle(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def _make_cifar10(root, rng, n=7):
    d = root / "cifar-10-batches-py"
    d.mkdir()
    xs, ys = [], []
    for i in range(1, 6):
        obj, x, y = _cifar_batch(rng, n, "labels", 10)
        _write_pickle(d / f"data_batch_{i}", obj)
        xs.append(x)
        ys.append(y)
    obj, xt, yt = _cifar_batch(rng, n + 1, "labels", 10, bytes_keys=False)
    _write_pickle(d / "test_batch", obj)
    return np.concatenate(xs), np.concatenate(ys), xt, yt


def test_cifar10_reader_layout_and_scale(tmp_path):
    rng = np.random.default_rng(0)
    xtr, ytr, xte, yte = _make_cifar10(tmp_path, rng)
    for arg in (tmp_path, tmp_path / "cifar-10-batches-py"):       # parent folder or the folder itself
        data = read_cifar10(arg)
        assert data.x_train.shape == (35, 3, 32, 32) and data.x_test.shape == (8, 3, 32, 32)
        assert data.x_train.dtype == np.float64 and data.y_train.dtype == np.int64
        # CHW order: row n of 'data' is R(32×32) then G then B, each row-major
        np.testing.assert_array_equal(data.x_train[3, 1, 2, 5], xtr[3, 1024 + 2 * 32 + 5] / 255.0)
        np.testing.assert_array_equal(data.x_test[7, 2, 31, 0], xte[7, 2048 + 31 * 32] / 255.0)
        np.testing.assert_array_equal(data.y_train, ytr)
        np.testing.assert_array_equal(data.y_test, yte)
        assert data.num_classes == 10 and data.shape == (3, 32, 32)


def test_cifar100_reader_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    obj, x, y = _cifar_batch(rng, 5, "fine_labels", 100)
    obj[b"coarse_labels"] = [0] * 5
    _write_pickle(d / "train", obj)
    obj, xt, yt = _cifar_batch(rng, 4, "fine_labels", 100)
    _write_pickle(d / "test", obj)
    data = read_cifar100(tmp_path)
    assert data.num_classes == 100
    np.testing.assert_array_equal(data.y_train, y)
    np.testing.assert_array_equal(data.x_test[2, 0, 1, 1], xt[2, 33] / 255.0)


def test_svhn_reader_maps_label_10_to_0(tmp_path):
    rng = np.random.default_rng(2)
    for split, n in (("train", 6), ("test", 3)):
        X = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = np.array([[10], [1], [9], [10], [5], [3]][:n], dtype=np.uint8)
        savemat(tmp_path / f"{split}_32x32.mat", {"X": X, "y": y})
        if split == "train":
            Xtr, ytr = X, y
    data = read_svhn(tmp_path)
    assert data.x_train.shape == (6, 3, 32, 32)
    np.testing.assert_array_equal(data.y_train, [0, 1, 9, 0, 5, 3])
    # X is (H, W, C, N): pixel (row 4, col 7, channel 2) of image 5
    assert data.x_train[5, 2, 4, 7] == Xtr[4, 7, 2, 5] / 255.0


def test_load_dataset_subsets_and_errors(tmp_path):
    rng = np.random.default_rng(3)
    _make_cifar10(tmp_path, rng)
    data = load_dataset("cifar10", tmp_path, n_train=10, n_test=4, seed=0)
    assert len(data.y_train) == 10 and len(data.y_test) == 4
    full = load_dataset("cifar10", tmp_path)
    # the subset is made of rows of the full set
    rows = {full.x_train[i].tobytes() for i in range(len(full.y_train))}
    assert all(data.x_train[i].tobytes() in rows for i in range(10))
    with pytest.raises(UsageError, match="--dataset must be one of"):
        load_dataset("mnist")
    with pytest.raises(UsageError, match="--data-dir is required"):
        load_dataset("cifar10")
    with pytest.raises(UsageError, match="not an existing directory"):
        load_dataset("svhn", tmp_path / "nope")
    with pytest.raises(UsageError, match="missing file"):
        load_dataset("cifar100", tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(UsageError, match="cannot read"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(UsageError, match="missing file"):
        load_dataset("svhn", tmp_path)


def test_synthetic_generator():
    x, y = make_synthetic(300, seed=5)
    assert x.shape == (300, 3, 32, 32) and y.shape == (300,)
    assert x.min() >= 0 and x.max() <= 1 and set(np.unique(y)) <= set(range(10))
    x2, y2 = make_synthetic(300, seed=5)
    np.testing.assert_array_equal(x, x2)
    x3, _ = make_synthetic(300, seed=6)
    assert not np.array_equal(x, x3)
    # every class appears: with 300 draws P(class absent) = 10·0.9^300 < 1e-12
    assert len(np.unique(y)) == 10
    data = load_dataset("synthetic", n_train=50, n_test=20, seed=1)
    assert data.x_train.shape == (50, 3, 32, 32) and data.x_test.shape == (20, 3, 32, 32)
    assert not np.array_equal(data.x_train[:20], data.x_test)
    assert "synthetic" in DATASETS
