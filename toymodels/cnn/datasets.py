"""Image data for the single-layer CNN: crops of natural photographs shipped with scikit-image (the
default of ``python -m toymodels.cnn train``), an embedded synthetic set, embedded stroke digits and
readers for CIFAR-10, CIFAR-100 and SVHN in their standard on-disk formats (nothing is ever downloaded).

Every dataset is returned as an :class:`ImageData` with images ``x`` of shape (N, C, H, W), float64
in [0, 1] (channels first, like torch), and int64 labels ``y`` in [0, K).

Datasets (``name`` in :data:`DATASETS`):

``photos`` (default of the CLI; needs scikit-image, whose wheel ships the files)
    32×32×3 random crops of the 8 colour photographs :data:`PHOTO_FILES` in ``skimage/data``
    (astronaut, cat, coffee cup, Hubble deep field, IHC stain, motorcycle, retina, rocket launch);
    the class is the photo. Each crop is taken at a random scale s ∈ {1, 2, 3, 4} (s×s block means,
    8-bit quantized like CIFAR) and mirrored with probability ½; train crops come from the left ~80 %
    of each photo's columns and test crops from the rest, so no pixel is in both splits (a shift
    between the splits: test accuracy is below train accuracy). 10,000 train / 2,000 test crops
    from the seeds 2·seed / 2·seed + 1, exactly class-balanced (about 300 MB as float64); see
    :func:`make_photos`. Natural images
    are what the synthetic generators below lacked: FGSM training of the 4-filter CNN on these crops
    shows catastrophic overfitting at ε = 24/255 and GradAlign (λ = 1) prevents it (5-seed
    measurements in :mod:`toymodels.cnn.train`). Generating the 12,000 default crops takes ~0.6 s of CPU
    (plus ~0.5 s once per process to import the reader and decode the photos; the downsampled photos
    stay cached, 19 MB).
``synthetic`` (default of :func:`load_dataset`, no files)
    32×32×3 images generated from a seed, see :func:`make_synthetic`. Each class k has a fixed
    random *prototype* P_k, a smooth colour image (Gaussian random field with power spectrum
    ∝ 1/f^β, β = 2 as for natural images, colour channels correlated); an example of class y is

        x = clip(½ + o + a·roll(P_y, s) + b·B, 0, 1),

    with a random brightness offset o ~ U[−0.15, 0.15], contrast a ~ U[½, 3/2]·σ_sig, a random
    circular shift s ∈ {−shift, …, shift}² and an independent natural-looking background field B
    of the same spectrum scaled by σ_bg. The prototypes depend only on ``proto_seed`` (fixed), so
    train and test splits (drawn from ``seed`` and ``seed + 1``) come from the same distribution.
    STATUS (open): with these constants FGSM training of the 4-filter CNN at ε = 10/255 and 16/255
    does NOT show catastrophic overfitting (prototype runs: the model stays nearly linear, gradient
    alignment → 0.99+; template data with Gaussian clutter has a near-linear Bayes classifier, so
    FGSM is near-optimal). A CO-exhibiting embedded default is still to be found.
``strokes`` (embedded, no files)
    28×28×1 MNIST-like stroke digits generated from a seed, see :func:`make_strokes` (a hand-made
    polyline font under a random rotation/shear/scale/shift, anti-aliased strokes of random width,
    Gaussian pixel noise σ = 0.05, dark background); 10,000 train / 1,000 test images from seeds
    2·seed and 2·seed + 1. MEASURED CO RATE (FGSM training, α = ε, 4 filters, Adam lr_max 0.003
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
``cifar10``
    ``<data_dir>/cifar-10-batches-py/data_batch_1..5`` and ``test_batch`` (python pickles with
    ``data`` (N, 3072) uint8 in CHW order and ``labels``); ``data_dir`` may also be that folder.
``cifar100``
    ``<data_dir>/cifar-100-python/train`` and ``test`` (``data`` and ``fine_labels``, 100 classes).
``svhn``
    ``<data_dir>/train_32x32.mat`` and ``test_32x32.mat`` (MATLAB files: ``X`` (32, 32, 3, N) uint8,
    ``y`` (N, 1) with digit 0 stored as label 10, mapped back to 0), read with scipy.io.loadmat.

Missing folders or files, unreadable files and unknown names raise
:class:`toymodels._cli.UsageError` (one line, exit status 2 on the command line).
"""
from __future__ import annotations

import functools
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._cli import UsageError, check_int_range

__all__ = ["ImageData", "DATASETS", "load_dataset", "make_synthetic", "read_cifar10", "read_cifar100",
           "read_svhn", "SYNTHETIC_DEFAULTS", "make_strokes", "STROKE_FONT", "STROKES_DEFAULTS", "PHOTO_FILES",
           "PHOTOS_DEFAULTS", "load_photos", "make_photos", "block_mean_u8", "photo_split_column",
           "DEFAULT_DATASET"]

#: the default dataset of ``python -m toymodels.cnn train`` (:func:`load_dataset` keeps "synthetic" as
#: its default name, for callers that need no scikit-image)
DEFAULT_DATASET = "photos"

DATASETS = ("photos", "synthetic", "strokes", "cifar10", "cifar100", "svhn")

#: constants of the default synthetic dataset (see the module docstring)
SYNTHETIC_DEFAULTS = dict(n_train=10_000, n_test=2_000, num_classes=10, size=32, beta=2.0, sig=0.07,
                          bg=0.12, shift=2, color_corr=0.7, proto_seed=1234)


@dataclass
class ImageData:
    """Train and test images (N, C, H, W) float64 in [0, 1] and int64 labels in [0, num_classes)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.x_train.shape[1:])

    def describe(self) -> str:
        C, H, W = self.shape
        return (f"{self.name}: {len(self.y_train)} train / {len(self.y_test)} test images "
                f"{H}×{W}×{C}, {self.num_classes} classes")


# ----------------------------------------------------------------------------------------------
# synthetic data
# ----------------------------------------------------------------------------------------------
def _power_law_field(rng: np.random.Generator, n: int, C: int, H: int, W: int, beta: float) -> np.ndarray:
    """n×C independent Gaussian random fields on an H×W torus with power spectrum ∝ |f|^−β (zero mean,
    each field normalized to unit standard deviation)."""
    fy = np.fft.fftfreq(H)[:, None]
    fx = np.fft.rfftfreq(W)[None, :]
    f = np.sqrt(fy ** 2 + fx ** 2)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2.0)
    amp[0, 0] = 0.0
    shape = (n, C, H, W // 2 + 1)
    z = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    out = np.fft.irfft2(z * amp, s=(H, W))
    out /= out.std(axis=(-2, -1), keepdims=True)
    return out


def _color_mix(C: int, corr: float) -> np.ndarray:
    """Cholesky factor of the C×C correlation matrix with off-diagonal ``corr`` (natural images have
    strongly correlated colour channels)."""
    R = corr * np.ones((C, C)) + (1.0 - corr) * np.eye(C)
    return np.linalg.cholesky(R)


def make_synthetic(n: int, *, seed: int = 0, num_classes: int = 10, size: int = 32, channels: int = 3,
                   beta: float = SYNTHETIC_DEFAULTS["beta"], sig: float = SYNTHETIC_DEFAULTS["sig"],
                   bg: float = SYNTHETIC_DEFAULTS["bg"], shift: int = SYNTHETIC_DEFAULTS["shift"],
                   color_corr: float = SYNTHETIC_DEFAULTS["color_corr"],
                   proto_seed: int = SYNTHETIC_DEFAULTS["proto_seed"]) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic images (n, channels, size, size) in [0, 1] and balanced-in-expectation labels.

    See the module docstring for the generative model. Deterministic in (``seed``, ``proto_seed``)."""
    check_int_range("n", n, 1)
    check_int_range("num_classes", num_classes, 2)
    check_int_range("size", size, 3)
    check_int_range("channels", channels, 1)
    check_int_range("shift", shift, 0)
    L = _color_mix(channels, color_corr)
    protos = _power_law_field(np.random.default_rng(proto_seed), num_classes, channels, size, size, beta)
    protos = np.einsum("cd,kdhw->kchw", L, protos)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    sh = rng.integers(-shift, shift + 1, (n, 2))
    x = np.empty((n, channels, size, size))
    for i in range(n):
        x[i] = np.roll(protos[y[i]], (int(sh[i, 0]), int(sh[i, 1])), axis=(-2, -1))
    x *= sig * rng.uniform(0.5, 1.5, (n, 1, 1, 1))
    back = _power_law_field(rng, n, channels, size, size, beta)
    x += bg * np.einsum("cd,ndhw->nchw", L, back)
    x += 0.5 + rng.uniform(-0.15, 0.15, (n, 1, 1, 1))
    np.clip(x, 0.0, 1.0, out=x)
    return x, y.astype(np.int64)


# ----------------------------------------------------------------------------------------------
# stroke digits (MNIST-like)
# ----------------------------------------------------------------------------------------------
def _arc(cx: float, cy: float, ry: float, rx: float, m: int) -> list:
    """Closed ellipse through ``m`` points (the first and last coincide), centre (cx, cy), radii rx, ry."""
    t = np.linspace(0.0, 2.0 * np.pi, m)
    return [(cx + rx * np.cos(s), cy + ry * np.sin(s)) for s in t]


#: hand-made polyline font of the digits 0–9 in the unit square, (x, y) with x to the right and y
#: downwards (image coordinates); each digit is a list of polylines
STROKE_FONT = {
    0: [_arc(0.5, 0.5, 0.48, 0.32, 16)],
    1: [[(0.5, 0.0), (0.5, 1.0)], [(0.32, 0.18), (0.5, 0.0)]],
    2: [[(0.2, 0.2), (0.4, 0.03), (0.68, 0.05), (0.8, 0.25), (0.7, 0.47), (0.2, 1.0), (0.85, 1.0)]],
    3: [[(0.2, 0.05), (0.8, 0.05), (0.5, 0.42), (0.78, 0.58), (0.8, 0.85), (0.58, 1.0), (0.2, 0.93)]],
    4: [[(0.65, 1.0), (0.65, 0.0), (0.15, 0.7), (0.88, 0.7)]],
    5: [[(0.8, 0.0), (0.25, 0.0), (0.2, 0.45), (0.58, 0.38), (0.8, 0.6), (0.76, 0.88), (0.5, 1.0),
         (0.2, 0.9)]],
    6: [[(0.7, 0.0), (0.36, 0.3), (0.2, 0.7), (0.35, 1.0), (0.65, 1.0), (0.8, 0.75), (0.62, 0.5),
         (0.32, 0.55), (0.2, 0.7)]],
    7: [[(0.15, 0.0), (0.85, 0.0), (0.4, 1.0)]],
    8: [_arc(0.5, 0.26, 0.24, 0.22, 12), _arc(0.5, 0.73, 0.27, 0.28, 12)],
    9: [_arc(0.5, 0.3, 0.28, 0.26, 12), [(0.76, 0.3), (0.62, 1.0)]],
}
#: the font as line segments: digit -> array (n_segments, 2 endpoints, 2 coordinates)
_STROKE_SEGS = {k: np.array([(p, q) for line in v for p, q in zip(line[:-1], line[1:])])
                for k, v in STROKE_FONT.items()}

#: constants of the stroke-digit dataset (see :func:`make_strokes`)
STROKES_DEFAULTS = dict(n_train=10_000, n_test=1_000, num_classes=10, size=28, scale=(0.55, 0.75),
                        aspect=(0.85, 1.15), rot=15.0, shear=0.25, shift=2.0, width=(1.0, 2.2),
                        intensity=(0.8, 1.0), noise=0.05)


def make_strokes(n: int, *, seed: int = 0, size: int = STROKES_DEFAULTS["size"], channels: int = 1,
                 scale=STROKES_DEFAULTS["scale"], aspect=STROKES_DEFAULTS["aspect"],
                 rot: float = STROKES_DEFAULTS["rot"], shear: float = STROKES_DEFAULTS["shear"],
                 shift: float = STROKES_DEFAULTS["shift"], width=STROKES_DEFAULTS["width"],
                 intensity=STROKES_DEFAULTS["intensity"], noise: float = STROKES_DEFAULTS["noise"]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` MNIST-like stroke digits (n, channels, size, size) in [0, 1] and labels y ~ U{0, …, 9}.

    Recipe (all draws from ``default_rng(seed)``, in this order, each of length n): label
    y ~ U{0..9}; rotation θ ~ U[−rot, rot] degrees; shear s ~ U[−shear, shear]; scale
    σ ~ U[scale]·size pixels; aspect a ~ U[aspect]; centre c = size/2 + U[−shift, shift]²; stroke
    half-width w ~ U[width] pixels; ink I ~ U[intensity]. The polylines of :data:`STROKE_FONT` for
    digit y are mapped from the unit square to pixels by p ↦ A (p − ½) + c with
    A = R(θ) · [[1, s], [0, 1]] · diag(σ a, σ); at each pixel centre P (coordinates i + ½) with
    distance d(P) to the nearest mapped segment the image is I · clip(w − d(P) + ½, 0, 1) (an
    anti-aliased stroke), the same in every channel. Finally i.i.d. Gaussian noise of standard
    deviation ``noise`` is added (one draw of shape (n, channels, size, size)) and the result clipped
    to [0, 1]. Deterministic in ``seed``; numpy only."""
    check_int_range("n", n, 1)
    check_int_range("size", size, 3)
    check_int_range("channels", channels, 1)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    theta = np.deg2rad(rng.uniform(-rot, rot, n))
    sh = rng.uniform(-shear, shear, n)
    sc = rng.uniform(*scale, n) * size
    asp = rng.uniform(*aspect, n)
    cen = size / 2 + rng.uniform(-shift, shift, (n, 2))
    w = rng.uniform(*width, n)
    ink = rng.uniform(*intensity, n)
    yy, xx = np.mgrid[0:size, 0:size].astype(float) + 0.5
    P = np.stack([xx.ravel(), yy.ravel()], 1)                       # pixel centres (x, y), (size², 2)
    x = np.empty((n, channels, size, size))
    for i in range(n):
        c, s = np.cos(theta[i]), np.sin(theta[i])
        A = np.array([[c, -s], [s, c]]) @ np.array([[1.0, sh[i]], [0.0, 1.0]]) @ np.diag([sc[i] * asp[i], sc[i]])
        seg = (_STROKE_SEGS[int(y[i])] - 0.5) @ A.T + cen[i]        # (n_seg, 2, 2) in pixels
        a, d = seg[:, 0], seg[:, 1] - seg[:, 0]
        L2 = (d ** 2).sum(1) + 1e-12
        t = np.clip(((P[:, None] - a[None]) * d[None]).sum(2) / L2[None], 0.0, 1.0)
        dist = np.sqrt((((a[None] + t[..., None] * d[None]) - P[:, None]) ** 2).sum(2)).min(1)
        x[i] = (ink[i] * np.clip(w[i] - dist + 0.5, 0.0, 1.0)).reshape(size, size)[None]
    x += noise * rng.standard_normal(x.shape)
    np.clip(x, 0.0, 1.0, out=x)
    return x, y.astype(np.int64)


# ----------------------------------------------------------------------------------------------
# crops of the colour photographs shipped inside the scikit-image wheel
# ----------------------------------------------------------------------------------------------
#: the colour photographs of ``skimage/data`` used as classes (label k = file k); all are in the
#: wheel itself (nothing is fetched with pooch), sha256 as in ``skimage.data._registry``
PHOTO_FILES = ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
               "motorcycle_left.png", "retina.jpg", "rocket.jpg")

#: constants of the photo-crop dataset (see :func:`make_photos`)
PHOTOS_DEFAULTS = dict(n_train=10_000, n_test=2_000, num_classes=len(PHOTO_FILES), size=32,
                       scales=(1, 2, 3, 4), test_frac=0.2)


def _skimage_data_dir() -> Path:
    try:
        import skimage
    except ImportError:
        raise UsageError("dataset 'photos' needs scikit-image (pip install scikit-image); or choose "
                         "--dataset synthetic|strokes") from None
    return Path(skimage.__file__).resolve().parent / "data"


def load_photos() -> list:
    """The photographs of :data:`PHOTO_FILES` as uint8 arrays (H, W, 3), read from the scikit-image
    package folder with ``skimage.io.imread`` (alpha channels dropped). Raises :class:`UsageError`
    if scikit-image or one of the files is missing."""
    d = _skimage_data_dir()
    from skimage.io import imread

    out = []
    for f in PHOTO_FILES:
        path = d / f
        if not path.is_file():
            raise UsageError(f"dataset 'photos': {str(path)!r} is missing from the scikit-image installation")
        try:
            img = np.asarray(imread(str(path)))
        except Exception as exc:
            raise UsageError(f"dataset 'photos': cannot read {str(path)!r} ({type(exc).__name__})") from None
        if img.ndim != 3 or img.shape[2] < 3 or img.dtype != np.uint8:
            raise UsageError(f"dataset 'photos': {str(path)!r} is not an RGB uint8 image")
        out.append(np.ascontiguousarray(img[:, :, :3]))
    return out


def block_mean_u8(img: np.ndarray, s: int) -> np.ndarray:
    """Downsample a uint8 image (H, W, C) by the integer factor ``s``: the mean of each s×s block
    (the last H mod s rows and W mod s columns are dropped), rounded half up to uint8."""
    if s == 1:
        return img
    H2, W2 = img.shape[0] // s, img.shape[1] // s
    acc = np.zeros((H2, W2) + img.shape[2:], np.uint32)
    for i in range(s):                       # s² strided adds: much faster than a reshape-mean
        for j in range(s):
            acc += img[i:H2 * s:s, j:W2 * s:s]
    return ((acc + (s * s) // 2) // (s * s)).astype(np.uint8)


def photo_split_column(width: int, *, size: int = 32, scales=(1, 2, 3, 4), test_frac: float = 0.2) -> int:
    """Column b (in the original photo of width ``width``) splitting train (columns < b) from test
    (columns ≥ b) crops: the right ``test_frac`` of the photo, but at least size·s_max + s_max columns so
    that a test crop fits at every scale."""
    smax = max(scales)
    return width - max(int(round(test_frac * width)), size * smax + smax)


@functools.lru_cache(maxsize=2)
def _photo_levels(scales: tuple) -> tuple:
    """Cached downsampled photos: per photo (original width, {s: uint8 (H//s, W//s, 3)}), ~20 MB."""
    return _levels(load_photos(), scales)


def _levels(photos, scales: tuple) -> tuple:
    return tuple((img.shape[1], {sc: block_mean_u8(img, sc) for sc in scales}) for img in photos)


def make_photos(n: int, *, seed: int = 0, split: str = "train", size: int = PHOTOS_DEFAULTS["size"],
                scales=PHOTOS_DEFAULTS["scales"], test_frac: float = PHOTOS_DEFAULTS["test_frac"],
                photos: list | None = None, return_info: bool = False):
    """``n`` random crops (n, 3, size, size) in [0, 1] of the photographs :data:`PHOTO_FILES`; the
    label is the photo (K = 8 classes, exactly balanced: ``n // K`` or ``n // K + 1`` per class).

    Recipe (all draws from ``default_rng(seed)``, in this order): labels y = (0, 1, …, K−1, 0, …)[:n]
    shuffled; scale s ~ U(``scales``); u ~ U[0, 1)^{n×2} (column, row); flip f ~ Bernoulli(½). Photo y
    is downsampled by s (:func:`block_mean_u8`, anti-aliased, quantized to 8 bits like CIFAR) and the
    crop is its size×size window at row ⌊u₂ (H_s − size + 1)⌋ and column lo + ⌊u₁ (hi − lo + 1)⌋,
    mirrored left-right if f. ``split`` picks the columns: with b = :func:`photo_split_column` of the
    original width, train windows lie in original columns [0, b) (lo = 0, hi = ⌊b/s⌋ − size) and test
    windows in [b, W) (lo = ⌈b/s⌉, hi = ⌊W/s⌋ − size), so no original pixel is in both splits.

    Natural-image statistics (1/f² spectra, edges, textures, correlated colours, JPEG artefacts of three
    of the photos) are what the embedded synthetic generators lacked: FGSM training of the 4-filter
    CNN shows catastrophic overfitting on these crops (see :mod:`toymodels.cnn.train`).

    ``photos`` (the output of :func:`load_photos`) saves re-reading the files; ``return_info`` also
    returns a dict of per-crop int arrays ``scale``, ``row``, ``col`` (top-left corner in the
    downsampled photo) and bool ``flip``. Deterministic in ``seed`` (for given decoded photos)."""
    check_int_range("n", n, 1)
    check_int_range("size", size, 3)
    if split not in ("train", "test"):
        raise UsageError(f"split must be 'train' or 'test', got {split!r}")
    scales = tuple(int(s) for s in scales)
    if not scales or min(scales) < 1:
        raise UsageError(f"scales must be integers >= 1, got {scales!r}")
    if not 0 < test_frac < 1:
        raise UsageError(f"test_frac must be in (0, 1), got {test_frac!r}")
    levels = _photo_levels(scales) if photos is None else _levels(photos, scales)
    K = len(levels)
    rng = np.random.default_rng(seed)
    y = np.arange(n) % K
    rng.shuffle(y)
    s = rng.choice(np.asarray(scales), n)
    u = rng.random((n, 2))
    flip = rng.random(n) < 0.5
    row, col = np.zeros(n, np.int64), np.zeros(n, np.int64)
    out = np.empty((n, size, size, 3), np.uint8)
    ar = np.arange(size)
    for k, lev in enumerate(levels):
        width = lev[0]
        b = photo_split_column(width, size=size, scales=scales, test_frac=test_frac)
        if b < size * max(scales):
            raise UsageError(f"photo {k} ({width} px wide) is too narrow for size {size} and scales {scales}")
        for sc in scales:
            idx = np.flatnonzero((y == k) & (s == sc))
            if idx.size == 0:
                continue
            im = lev[1][sc]
            H, W = im.shape[:2]
            lo, hi = (0, b // sc - size) if split == "train" else (-(-b // sc), W - size)
            c0 = lo + np.floor(u[idx, 0] * (hi - lo + 1)).astype(np.int64)
            r0 = np.floor(u[idx, 1] * (H - size + 1)).astype(np.int64)
            out[idx] = im[(r0[:, None] + ar)[:, :, None], (c0[:, None] + ar)[:, None, :]]
            row[idx], col[idx] = r0, c0
    out[flip] = out[flip][:, :, ::-1]
    x = out.transpose(0, 3, 1, 2).astype(np.float64)
    x /= 255.0
    if return_info:
        return x, y.astype(np.int64), {"scale": s.astype(np.int64), "row": row, "col": col, "flip": flip}
    return x, y.astype(np.int64)


# ----------------------------------------------------------------------------------------------
# readers of the standard formats
# ----------------------------------------------------------------------------------------------
def _resolve_dir(data_dir, sub: str | None, name: str) -> Path:
    if data_dir is None:
        raise UsageError(f"--data-dir is required for dataset {name!r} (a folder with the standard files; "
                         "nothing is downloaded)")
    d = Path(data_dir).expanduser()
    if not d.is_dir():
        raise UsageError(f"--data-dir {str(data_dir)!r} is not an existing directory")
    if sub is not None and (d / sub).is_dir():
        d = d / sub
    return d


def _need(path: Path, name: str) -> Path:
    if not path.is_file():
        raise UsageError(f"dataset {name!r}: missing file {str(path)!r}")
    return path


def _unpickle(path: Path, name: str) -> dict:
    try:
        with open(path, "rb") as fh:
            obj = pickle.load(fh, encoding="bytes")
    except Exception as exc:  # corrupted, truncated or not a pickle
        raise UsageError(f"dataset {name!r}: cannot read {str(path)!r} ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise UsageError(f"dataset {name!r}: {str(path)!r} is not a CIFAR batch (expected a dict)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _cifar_arrays(path: Path, label_key: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path, name)
    if "data" not in d or label_key not in d:
        raise UsageError(f"dataset {name!r}: {str(path)!r} lacks the keys 'data' and {label_key!r}")
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key], dtype=np.int64).ravel()
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise UsageError(f"dataset {name!r}: {str(path)!r} must hold data (N, 3072) and N labels, got "
                         f"{data.shape} and {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def _to_float(x_u8: np.ndarray) -> np.ndarray:
    return np.asarray(x_u8, dtype=np.float64) / 255.0


def _check_labels(y: np.ndarray, K: int, name: str) -> None:
    if y.size and (y.min() < 0 or y.max() >= K):
        raise UsageError(f"dataset {name!r}: labels must lie in [0, {K - 1}], got [{y.min()}, {y.max()}]")


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
        raise UsageError(f"dataset 'svhn': cannot read {str(path)!r} ({type(exc).__name__})") from None
    if "X" not in m or "y" not in m:
        raise UsageError(f"dataset 'svhn': {str(path)!r} lacks the variables 'X' and 'y'")
    X, y = np.asarray(m["X"]), np.asarray(m["y"]).astype(np.int64).ravel()
    if X.ndim != 4 or X.shape[:3] != (32, 32, 3) or X.shape[3] != y.shape[0]:
        raise UsageError(f"dataset 'svhn': {str(path)!r} must hold X (32, 32, 3, N) and N labels, got "
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


def _subset(x: np.ndarray, y: np.ndarray, n: int | None, rng: np.random.Generator):
    if n is None or n >= len(y):
        return x, y
    idx = np.sort(rng.choice(len(y), size=n, replace=False))
    return x[idx], y[idx]


def load_dataset(name: str = "synthetic", data_dir: str | os.PathLike | None = None, *,
                 n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> ImageData:
    """Load ``name`` (one of :data:`DATASETS`), optionally a random subset of ``n_train`` training and
    ``n_test`` test images (chosen with ``default_rng(seed)``; the embedded sets are generated at
    exactly these sizes — synthetic: defaults 10,000 / 2,000, strokes: 10,000 / 1,000 — from the
    data seeds 2·``seed`` (train) and 2·``seed`` + 1 (test))."""
    if name not in DATASETS:
        raise UsageError(f"--dataset must be one of {{{', '.join(DATASETS)}}}, got {name!r}")
    if n_train is not None:
        check_int_range("--n-train", n_train, 1)
    if n_test is not None:
        check_int_range("--n-test", n_test, 1)
    if name == "synthetic":
        ntr = SYNTHETIC_DEFAULTS["n_train"] if n_train is None else n_train
        nte = SYNTHETIC_DEFAULTS["n_test"] if n_test is None else n_test
        xtr, ytr = make_synthetic(ntr, seed=2 * seed)
        xte, yte = make_synthetic(nte, seed=2 * seed + 1)
        meta = {k: v for k, v in SYNTHETIC_DEFAULTS.items() if k not in ("n_train", "n_test")}
        return ImageData("synthetic", xtr, ytr, xte, yte, SYNTHETIC_DEFAULTS["num_classes"], meta)
    if name == "photos":
        ntr = PHOTOS_DEFAULTS["n_train"] if n_train is None else n_train
        nte = PHOTOS_DEFAULTS["n_test"] if n_test is None else n_test
        xtr, ytr = make_photos(ntr, seed=2 * seed, split="train")
        xte, yte = make_photos(nte, seed=2 * seed + 1, split="test")
        meta = {k: v for k, v in PHOTOS_DEFAULTS.items() if k not in ("n_train", "n_test")}
        meta["files"] = list(PHOTO_FILES)
        return ImageData("photos", xtr, ytr, xte, yte, PHOTOS_DEFAULTS["num_classes"], meta)
    if name == "strokes":
        ntr = STROKES_DEFAULTS["n_train"] if n_train is None else n_train
        nte = STROKES_DEFAULTS["n_test"] if n_test is None else n_test
        xtr, ytr = make_strokes(ntr, seed=2 * seed)
        xte, yte = make_strokes(nte, seed=2 * seed + 1)
        meta = {k: v for k, v in STROKES_DEFAULTS.items() if k not in ("n_train", "n_test")}
        return ImageData("strokes", xtr, ytr, xte, yte, STROKES_DEFAULTS["num_classes"], meta)
    reader = {"cifar10": read_cifar10, "cifar100": read_cifar100, "svhn": read_svhn}[name]
    data = reader(data_dir)
    rng = np.random.default_rng(seed)
    data.x_train, data.y_train = _subset(data.x_train, data.y_train, n_train, rng)
    data.x_test, data.y_test = _subset(data.x_test, data.y_test, n_test, rng)
    return data
