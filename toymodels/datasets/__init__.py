"""The data of every model and of the torch layer, in one place (nothing is ever downloaded).

Regression (:mod:`toymodels.datasets.regression`): the sparse-regression generator of Ch. 5 and the
validated ``.npz`` loader (:class:`RegressionData`, :func:`make_sparse_regression`, :func:`load_regression`).

Images: crops of natural photographs shipped with scikit-image (the default of the CNN study), an
embedded synthetic set, embedded stroke digits (:mod:`toymodels.datasets.images`) and readers for
CIFAR-10, CIFAR-100 and SVHN in their standard on-disk formats (:mod:`toymodels.datasets.files`),
all behind :func:`load_images`.

Every dataset is returned as an :class:`ImageData` with images ``x`` of shape (N, C, H, W), float64
in [0, 1] (channels first, like torch), and int64 labels ``y`` in [0, K).

Image datasets (``name`` in :data:`IMAGE_DATASETS`):

``photos`` (default of the CLI; needs scikit-image, whose wheel ships the files)
    32×32×3 random crops of the 8 colour photographs :data:`PHOTO_FILES` in ``skimage/data``
    (astronaut, cat, coffee cup, Hubble deep field, IHC stain, motorcycle, retina, rocket launch);
    the class is the photo. Each crop is taken at a random scale s ∈ {1, 2, 3, 4} (s×s block means,
    8-bit quantized like CIFAR) and mirrored with probability ½; train crops come from the left ~80 %
    of each photo's columns and test crops from the rest, so no pixel is in both splits (a shift
    between the splits: test accuracy is below train accuracy). 10,000 train / 2,000 test crops
    from the streams (seed, "photos/train") / (seed, "photos/test"), exactly class-balanced (about 300 MB as float64); see
    :func:`make_photos`. Natural images
    are what the synthetic generators below lacked: FGSM training of the 4-filter CNN on these crops
    can show catastrophic overfitting at ε = 24/255 (in 3 of seeds 0–9 with these streams; 4 of 5
    with the seeds before issue 12) and GradAlign (λ = 1) prevented it in every run (measurements in
    the README). Generating the 12,000 default crops takes ~0.6 s of CPU
    (plus ~0.5 s once per process to import the reader and decode the photos; the downsampled photos
    stay cached, 19 MB).
``synthetic`` (default of :func:`load_images`, no files)
    32×32×3 images generated from a seed, see :func:`make_synthetic`. Each class k has a fixed
    random *prototype* P_k, a smooth colour image (Gaussian random field with power spectrum
    ∝ 1/f^β, β = 2 as for natural images, colour channels correlated); an example of class y is

        x = clip(½ + o + a·roll(P_y, s) + b·B, 0, 1),

    with a random brightness offset o ~ U[−0.15, 0.15], contrast a ~ U[½, 3/2]·σ_sig, a random
    circular shift s ∈ {−shift, …, shift}² and an independent natural-looking background field B
    of the same spectrum scaled by σ_bg. The prototypes depend only on ``proto_seed`` (fixed), so
    train and test splits (drawn from the streams (seed, "synthetic/train") and (seed, "synthetic/test"))
    come from the same distribution.
    STATUS (open): with these constants FGSM training of the 4-filter CNN at ε = 10/255 and 16/255
    does NOT show catastrophic overfitting (prototype runs: the model stays nearly linear, gradient
    alignment → 0.99+; template data with Gaussian clutter has a near-linear Bayes classifier, so
    FGSM is near-optimal). A CO-exhibiting embedded default is still to be found.
``strokes`` (embedded, no files)
    28×28×1 MNIST-like stroke digits generated from a seed, see :func:`make_strokes` (a hand-made
    polyline font under a random rotation/shear/scale/shift, anti-aliased strokes of random width,
    Gaussian pixel noise σ = 0.05, dark background); 10,000 train / 1,000 test images from the
    streams (seed, "strokes/train") and (seed, "strokes/test"). MEASURED CO RATE (measured before the named streams, with data seeds 2·s / 2·s + 1; FGSM training, α = ε, 4 filters, Adam lr_max 0.003
    cyclic, 20 epochs, train seed = data seed s; "CO" = :func:`toymodels.cnn.train.detect_co` with
    ``patience=1`` fires
    AND the best per-epoch PGD-10 accuracy before it is ≥ 0.3; PGD-50-10 = final evaluation on
    1,000 test points; align = gradient alignment at the best epoch → at the end, and at the end
    with the culprit filter zeroed):

    ======  =====  ====  ========  ===========  =========  =======================
    ε       λ      s     CO epoch  best PGD     PGD-50-10  align best → end (w/o)
    ======  =====  ====  ========  ===========  =========  =======================
    0.15    0      0     10        .806 (ep 7)  .024       .96 → .52 (.55)
    0.15    0      1     —         .904         .861       .95 → .95 (.95)
    0.15    0      2     3         .420 (ep 2)  .503       .91 → .60 (.95) recovers
    0.15    0      3     —         .812         .385       .98 → .75 (.77) slow decay
    0.15    0      4     17        .674 (ep 5)  .113       .89 → .67 (.66)
    0.175   0      0     8         .724 (ep 5)  .000       .97 → .51 (.53)
    0.175   0      1     —         .802         .554       .95 → .79 (.96)
    0.175   0      2     3         .262 (ep 2)  .403       .89 → .59 (.93) (peak < .3)
    0.175   0      3     18        .758 (ep 7)  .220       .97 → .71 (.71)
    0.175   0      4     15        .590 (ep 4)  .045       .92 → .63 (.64)
    0.175   3      0     8         .696 (ep 6)  .422       .98 → .89 (.88)
    0.175   3      1     5         .334 (ep 2)  .123       .97 → .84 (.85)
    0.175   3      2     6         .398 (ep 4)  .678       .94 → .97 (.79) recovers
    0.175   3      3     4         .422 (ep 2)  .699       .98 → .96 (.88) recovers
    0.175   3      4     17        .750 (ep13)  .036       .96 → .79 (.77)
    0.175   5      0     13        .766 (ep10)  .061       .98 → .71 (.70)
    0.175   5      1     7         .322 (ep 6)  .173       .89 → .88 (.71)
    0.175   5      2     —         .760         .542       .98 → .96 (.96)
    0.175   5      3     3         .418 (ep 2)  .766       .98 → .98 (.86) recovers
    0.175   5      4     17        .764 (ep10)  .042       .98 → .80 (.79)
    ======  =====  ====  ========  ===========  =========  =======================

    FGSM: CO in 3/5 seeds at ε = 0.15 (one of them transient) and 3/5 at ε = 0.175 (all three
    permanent; seed 0 is textbook CO: PGD .72 → .00 within 3 epochs while FGSM accuracy stays ≈ .9,
    alignment .97 → .51); the other seeds either keep their robustness or lose it slowly. GradAlign
    at ε = 0.175 with λ = 3 or 5 does NOT reliably prevent it (detector fires in 5/5 resp. 4/5
    seeds, though in 2/5 resp. 1/5 the drop is transient; final PGD-50-10 above FGSM's in 3/5 seeds
    for both λ, worse in seeds 1 and 4), and the CIFAR value
    :func:`toymodels.cnn.train.default_lambda` is far too large here (≈ 47,000 at ε = 0.2 → a constant
    classifier). Hence ``strokes`` shows CO often but not reliably enough, and GradAlign does not
    cure it reliably enough, to be the default; it is an option.
``cifar10``, ``cifar100``, ``svhn``
    read from ``data_dir`` in their standard formats, see :mod:`toymodels.datasets.files`.

Missing folders or files, unreadable files and unknown names raise
:class:`toymodels.errors.ConfigError` (one line naming the flag, exit status 2 on the command line).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ConfigError, check_choice, check_int
from ..rng import stream
from .files import read_cifar10, read_cifar100, read_svhn
from .images import (PHOTO_FILES, PHOTOS_DEFAULTS, STROKES_DEFAULTS, SYNTHETIC_DEFAULTS, ImageData,
                     make_photos, make_strokes, make_synthetic)
from .regression import RegressionData, load_regression, make_sparse_regression

__all__ = ["ImageData", "IMAGE_DATASETS", "DEFAULT_IMAGE_DATASET", "load_images", "make_synthetic",
           "make_strokes", "make_photos", "read_cifar10", "read_cifar100", "read_svhn", "RegressionData",
           "make_sparse_regression", "load_regression"]

#: the default image dataset of the CNN study (:func:`load_images` keeps "synthetic" as its default
#: name, for callers that need no scikit-image)
DEFAULT_IMAGE_DATASET = "photos"

IMAGE_DATASETS = ("photos", "synthetic", "strokes", "cifar10", "cifar100", "svhn")

_GENERATED = {"synthetic": (make_synthetic, SYNTHETIC_DEFAULTS), "photos": (make_photos, PHOTOS_DEFAULTS),
              "strokes": (make_strokes, STROKES_DEFAULTS)}


def _subset(x: np.ndarray, y: np.ndarray, n: int | None, rng: np.random.Generator, field: str):
    if n is None:
        return x, y
    if n > len(y):
        raise ConfigError(field, f"must be at most the {len(y)} images of the split", n)
    if n == len(y):
        return x, y
    idx = np.sort(rng.choice(len(y), size=n, replace=False))
    return x[idx], y[idx]


def load_images(name: str = "synthetic", data_dir: str | os.PathLike | None = None, *,
                n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> ImageData:
    """Load the image dataset ``name`` (one of :data:`IMAGE_DATASETS`).

    Embedded sets are generated at exactly ``n_train`` / ``n_test`` images (defaults in their
    ``*_DEFAULTS``) from the streams ``(seed, "<name>/train")`` and ``(seed, "<name>/test")``; the
    file datasets are read from ``data_dir`` and, when ``n_train`` / ``n_test`` are given, reduced to
    random subsets drawn from the stream ``(seed, "subset")`` (asking for more images than a split has
    is a ConfigError, not a silent cap)."""
    check_choice("dataset", name, IMAGE_DATASETS)
    if n_train is not None:
        check_int("n_train", n_train, 1)
    if n_test is not None:
        check_int("n_test", n_test, 1)
    if name in _GENERATED:
        make, defaults = _GENERATED[name]
        ntr = defaults["n_train"] if n_train is None else n_train
        nte = defaults["n_test"] if n_test is None else n_test
        extra = {"split": "train"} if name == "photos" else {}
        xtr, ytr = make(ntr, seed=stream(seed, f"{name}/train"), **extra)
        if name == "photos":
            extra = {"split": "test"}
        xte, yte = make(nte, seed=stream(seed, f"{name}/test"), **extra)
        meta = {k: v for k, v in defaults.items() if k not in ("n_train", "n_test")}
        if name == "photos":
            meta["files"] = list(PHOTO_FILES)
        return ImageData(name, xtr, ytr, xte, yte, defaults["num_classes"], meta)
    reader = {"cifar10": read_cifar10, "cifar100": read_cifar100, "svhn": read_svhn}[name]
    data = reader(data_dir)
    rng = stream(seed, "subset")
    data.x_train, data.y_train = _subset(data.x_train, data.y_train, n_train, rng, "n_train")
    data.x_test, data.y_test = _subset(data.x_test, data.y_test, n_test, rng, "n_test")
    return data
