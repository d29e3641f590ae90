"""Readers of toymodels.cnn.datasets on tiny fake files written in the standard formats (CIFAR python
pickles, SVHN .mat), and the embedded synthetic generator. Nothing is downloaded."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.io import savemat

from toymodels.errors import ConfigError
from toymodels.datasets import (IMAGE_DATASETS, load_images, make_strokes, make_synthetic, read_cifar10,
                                    read_cifar100, read_svhn)


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


def test_load_images_subsets_and_errors(tmp_path):
    rng = np.random.default_rng(3)
    _make_cifar10(tmp_path, rng)
    data = load_images("cifar10", tmp_path, n_train=10, n_test=4, seed=0)
    assert len(data.y_train) == 10 and len(data.y_test) == 4
    full = load_images("cifar10", tmp_path)
    # the subset is made of rows of the full set
    rows = {full.x_train[i].tobytes() for i in range(len(full.y_train))}
    assert all(data.x_train[i].tobytes() in rows for i in range(10))
    with pytest.raises(ConfigError, match="dataset must be one of"):
        load_images("mnist")
    with pytest.raises(ConfigError, match="data_dir is required"):
        load_images("cifar10")
    with pytest.raises(ConfigError, match="must be an existing directory"):
        load_images("svhn", tmp_path / "nope")
    with pytest.raises(ConfigError, match="missing file"):
        load_images("cifar100", tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="unreadable|cannot read|not a CIFAR"):
        load_images("cifar10", tmp_path)
    with pytest.raises(ConfigError, match="missing file"):
        load_images("svhn", tmp_path)


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
    data = load_images("synthetic", n_train=50, n_test=20, seed=1)
    assert data.x_train.shape == (50, 3, 32, 32) and data.x_test.shape == (20, 3, 32, 32)
    assert not np.array_equal(data.x_train[:20], data.x_test)
    assert "synthetic" in IMAGE_DATASETS


def test_strokes_generator():
    # Label balance: n = 1000 labels i.i.d. uniform on 10 classes, each count ~ Bin(1000, 0.1) with
    # s.e. sqrt(1000·0.1·0.9) ≈ 9.5; tolerance 5 s.e. ≈ 47. Passes for any seed 0–99 (checked).
    n = 1000
    x, y = make_strokes(n, seed=3)
    assert x.shape == (n, 1, 28, 28) and x.dtype == np.float64 and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))
    assert np.all(np.abs(np.bincount(y, minlength=10) - n / 10) <= 5 * np.sqrt(n * 0.1 * 0.9))
    # dark background with bright strokes: most pixels are near 0, every image has some ink
    assert np.mean(x < 0.2) > 0.6 and np.all(x.max(axis=(1, 2, 3)) > 0.7)
    x2, y2 = make_strokes(n, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, y3 = make_strokes(n, seed=4)
    assert not np.array_equal(y, y3) and np.abs(x - x3).mean() > 0.05
    data = load_images("strokes", n_train=40, n_test=30, seed=2)
    assert data.x_train.shape == (40, 1, 28, 28) and data.x_test.shape == (30, 1, 28, 28)
    assert data.num_classes == 10 and "strokes" in IMAGE_DATASETS and data.name == "strokes"


def test_strokes_geometry_noise_free():
    # With every random factor pinned (no rotation/shear/shift, scale 0.6·28, half-width 1.5, ink 1,
    # no noise) a '1' is the vertical segment x = 14, y ∈ [14 − 8.4, 14 + 8.4] plus the serif
    # (0.32, 0.18) → (0.5, 0) mapped by p ↦ 16.8 (p − ½) + 14; the pixel value is
    # clip(1.5 − dist + 0.5, 0, 1), computed here independently from the geometry.
    x, y = make_strokes(300, seed=0, rot=0.0, shear=0.0, shift=0.0, scale=(0.6, 0.6), aspect=(1.0, 1.0),
                        width=(1.5, 1.5), intensity=(1.0, 1.0), noise=0.0)
    img = x[np.flatnonzero(y == 1)[0], 0]
    s = 0.6 * 28
    segs = [((14.0, 14 - s / 2), (14.0, 14 + s / 2)),
            ((14 + s * (0.32 - 0.5), 14 + s * (0.18 - 0.5)), (14.0, 14 - s / 2))]
    expect = np.empty((28, 28))
    for r in range(28):
        for c in range(28):
            P = np.array([c + 0.5, r + 0.5])
            dists = []
            for a, b in segs:
                a, b = np.array(a), np.array(b)
                t = np.clip(np.dot(P - a, b - a) / np.dot(b - a, b - a), 0, 1)
                dists.append(np.linalg.norm(a + t * (b - a) - P))
            expect[r, c] = np.clip(2.0 - min(dists), 0, 1)
    np.testing.assert_allclose(img, expect, atol=1e-9)
    # the same stroke in every channel (noise-free), other sizes
    xc, _ = make_strokes(5, seed=1, channels=3, size=20, noise=0.0)
    assert xc.shape == (5, 3, 20, 20) and np.array_equal(xc[:, 0], xc[:, 2])


# ---------------------------------------------------------------------------------------------
# photo crops (the default data of `python -m toymodels.cnn train`): needs scikit-image's wheel files
# ---------------------------------------------------------------------------------------------
def _raw_photos():
    """The photos read independently of the module (imageio via skimage.io, alpha dropped)."""
    skimage = pytest.importorskip("skimage")
    from pathlib import Path

    from skimage.io import imread

    from toymodels.datasets import PHOTO_FILES
    d = Path(skimage.__file__).resolve().parent / "data"
    return [np.asarray(imread(str(d / f)))[:, :, :3] for f in PHOTO_FILES]


def test_photos_shapes_range_balance_and_seed():
    pytest.importorskip("skimage")
    from toymodels.datasets import make_photos

    x, y = make_photos(203, seed=3)
    assert x.shape == (203, 3, 32, 32) and x.dtype == np.float64 and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() <= 1.0
    # 8-bit quantized, like CIFAR: every value is k/255
    np.testing.assert_allclose(x * 255, np.rint(x * 255), rtol=0, atol=1e-9)
    # exactly balanced: 203 = 8·25 + 3 → counts 25 or 26, and 3 classes have 26
    counts = np.bincount(y, minlength=8)
    assert counts.min() == 25 and counts.max() == 26 and counts.sum() == 203
    x2, y2 = make_photos(203, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, y3 = make_photos(203, seed=4)
    assert not np.array_equal(y, y3) and not np.array_equal(x, x3)
    # crops of different photos differ in content: not all images equal, natural spread of pixel values
    assert x.std(axis=(1, 2, 3)).mean() > 0.02


@pytest.mark.parametrize("split", ["train", "test"])
def test_photo_crops_are_block_means_of_the_photo(split):
    # recompute a sample of crops from the raw files: the s×s block mean rounded half up, mirrored if flipped
    from toymodels.datasets import make_photos

    raw = _raw_photos()
    x, y, info = make_photos(64, seed=11, split=split, return_info=True)
    assert set(np.unique(info["scale"])) <= {1, 2, 3, 4}
    for i in range(64):
        s, r, c = int(info["scale"][i]), int(info["row"][i]), int(info["col"][i])
        win = raw[y[i]][r * s:(r + 32) * s, c * s:(c + 32) * s].astype(np.float64)
        blk = win.reshape(32, s, 32, s, 3).mean(axis=(1, 3))
        expect = np.floor(blk + 0.5) / 255.0
        if info["flip"][i]:
            expect = expect[:, ::-1]
        np.testing.assert_allclose(x[i], expect.transpose(2, 0, 1), rtol=0, atol=1e-12)


def test_photo_train_and_test_crops_use_disjoint_columns():
    # In original-photo columns, every train crop lies left of every test crop of the same photo.
    from toymodels.datasets import make_photos

    raw = _raw_photos()
    _, ytr, itr = make_photos(2000, seed=0, split="train", return_info=True)
    _, yte, ite = make_photos(800, seed=1, split="test", return_info=True)
    for k in range(8):
        a, b = ytr == k, yte == k
        assert a.sum() == 250 and b.sum() == 100
        train_right = ((itr["col"][a] + 32) * itr["scale"][a]).max()       # exclusive right edge
        test_left = (ite["col"][b] * ite["scale"][b]).min()
        assert train_right <= test_left
        # test crops stay inside the photo (the block mean of the last full block)
        assert ((ite["col"][b] + 32) * ite["scale"][b]).max() <= raw[k].shape[1]
        assert ((ite["row"][b] + 32) * ite["scale"][b]).max() <= raw[k].shape[0]
        # both splits use every scale (250 resp. 100 draws from 4 scales)
        assert set(np.unique(itr["scale"][a])) == set(np.unique(ite["scale"][b])) == {1, 2, 3, 4}


def test_photos_through_load_images():
    pytest.importorskip("skimage")
    from toymodels.datasets import DEFAULT_IMAGE_DATASET, make_photos

    data = load_images("photos", n_train=48, n_test=16, seed=2)
    assert data.name == "photos" and data.num_classes == 8 and data.shape == (3, 32, 32)
    assert data.x_train.shape == (48, 3, 32, 32) and data.x_test.shape == (16, 3, 32, 32)
    # the named streams (seed, "photos/train") and (seed, "photos/test")
    from toymodels.rng import stream

    xtr, ytr = make_photos(48, seed=stream(2, "photos/train"), split="train")
    xte, yte = make_photos(16, seed=stream(2, "photos/test"), split="test")
    np.testing.assert_array_equal(data.x_train, xtr)
    np.testing.assert_array_equal(data.y_test, yte)
    np.testing.assert_array_equal(data.x_test, xte)
    assert "photos" in IMAGE_DATASETS and DEFAULT_IMAGE_DATASET == "photos"


def test_photos_without_skimage_is_a_config_error(monkeypatch):
    import sys

    from toymodels import datasets

    datasets.images._photo_levels.cache_clear()
    monkeypatch.setitem(sys.modules, "skimage", None)          # `import skimage` raises ImportError
    with pytest.raises(ConfigError, match="scikit-image"):
        datasets.make_photos(10)
    with pytest.raises(ConfigError, match="scikit-image"):
        load_images("photos", n_train=8, n_test=8)
    monkeypatch.undo()
    datasets.images._photo_levels.cache_clear()


def test_photos_bad_arguments():
    pytest.importorskip("skimage")
    from toymodels.datasets import make_photos

    for kw in (dict(split="val"), dict(scales=(0, 1)), dict(test_frac=1.0), dict(size=2)):
        with pytest.raises(ConfigError):
            make_photos(4, **kw)
