"""Embedded image datasets, generated (nothing is downloaded): crops of the colour photographs shipped
with scikit-image (``photos``, the default of the CNN study), a synthetic Gaussian-field set
(``synthetic``) and stroke digits (``strokes``). See :mod:`toymodels.datasets` for the overview.

Every generator takes ``seed``: an int, a ``numpy.random.SeedSequence`` or a ``Generator`` (as
``numpy.random.default_rng`` does); :func:`toymodels.datasets.load_images` passes the named streams
``(seed, "<name>/train")`` and ``(seed, "<name>/test")`` of :mod:`toymodels.rng`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, RunError, check_int

__all__ = ["ImageData", "make_synthetic", "SYNTHETIC_DEFAULTS", "make_strokes", "STROKE_FONT",
           "STROKES_DEFAULTS", "PHOTO_FILES", "PHOTOS_DEFAULTS", "load_photos", "make_photos", "block_mean_u8",
           "photo_split_column"]

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
    check_int("n", n, 1)
    check_int("num_classes", num_classes, 2)
    check_int("size", size, 3)
    check_int("channels", channels, 1)
    check_int("shift", shift, 0)
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
    check_int("n", n, 1)
    check_int("size", size, 3)
    check_int("channels", channels, 1)
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
        raise ConfigError("dataset", "'photos' needs scikit-image (pip install scikit-image); choose "
                          "synthetic or strokes without it", "photos") from None
    return Path(skimage.__file__).resolve().parent / "data"


def load_photos() -> list:
    """The photographs of :data:`PHOTO_FILES` as uint8 arrays (H, W, 3), read from the scikit-image
    package folder with ``skimage.io.imread`` (alpha channels dropped). Raises :class:`~toymodels.errors.RunError`
    if one of the files is missing or unreadable (ConfigError for the field ``dataset`` without scikit-image)."""
    d = _skimage_data_dir()
    from skimage.io import imread

    out = []
    for f in PHOTO_FILES:
        path = d / f
        if not path.is_file():
            raise RunError(f"dataset 'photos': {str(path)!r} is missing from the scikit-image installation")
        try:
            img = np.asarray(imread(str(path)))
        except Exception as exc:
            raise RunError(f"dataset 'photos': cannot read {str(path)!r} ({type(exc).__name__})") from None
        if img.ndim != 3 or img.shape[2] < 3 or img.dtype != np.uint8:
            raise RunError(f"dataset 'photos': {str(path)!r} is not an RGB uint8 image")
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
    CNN can show catastrophic overfitting on these crops (at ε = 24/255 in 3 of seeds 0–9, e.g. seed 1;
    see :mod:`toymodels.cnn.train`).

    ``photos`` (the output of :func:`load_photos`) saves re-reading the files; ``return_info`` also
    returns a dict of per-crop int arrays ``scale``, ``row``, ``col`` (top-left corner in the
    downsampled photo) and bool ``flip``. Deterministic in ``seed`` (for given decoded photos)."""
    check_int("n", n, 1)
    check_int("size", size, 3)
    if split not in ("train", "test"):
        raise ConfigError("split", "must be 'train' or 'test'", split)
    scales = tuple(int(s) for s in scales)
    if not scales or min(scales) < 1:
        raise ConfigError("scales", "must be integers >= 1", scales)
    if not 0 < test_frac < 1:
        raise ConfigError("test_frac", "must be in (0, 1)", test_frac)
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
            raise ConfigError("size", f"is too large for photo {k} ({width} px wide) at scales {scales}", size)
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
