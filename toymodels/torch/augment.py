"""Standard data augmentation of image batches: random crop with zero padding and random horizontal flip.

The CIFAR-10 augmentation of He et al. (2016) and of the thesis's training runs (torchvision's
``RandomCrop(32, padding=4)`` then ``RandomHorizontalFlip()``), on a whole batch (N, C, H, W) at once:
each image n is padded with ``padding`` zeros on every side, the H × W window whose top-left corner is
(dyₙ, dxₙ), dyₙ, dxₙ uniform in {0, …, 2·padding}, is cut out, and it is mirrored left–right when
flipₙ (probability ½):

    out[n, c, i, j] = padded[n, c, dyₙ + i, dxₙ + (W − 1 − j if flipₙ else j)].

The offsets and flips are drawn on the CPU from a ``torch.Generator`` (so a generator seed gives the
same augmentation on every device) and moved to the batch's device; the crop is one gather (no
per-image Python loop). Training (:mod:`toymodels.torch.train`, ``TrainConfig.augment``) draws them from
the stream ``(seed, "augment", epoch)``, restarted every epoch, so a resumed run augments as an
uninterrupted one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError, check_int

__all__ = ["PADDING", "draw_crop_flip", "crop_flip", "random_crop_flip"]

#: zero padding of the standard CIFAR-10 augmentation
PADDING = 4


def _check_batch(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ConfigError("x", "must be a batch tensor of shape (N, C, H, W)",
                          tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__)


def draw_crop_flip(n: int, generator: torch.Generator, padding: int = PADDING, flip: bool = True):
    """The random parameters of :func:`crop_flip` for ``n`` images, drawn on the CPU from ``generator``.

    Parameters
    ----------
    n : number of images (>= 0).
    generator : a CPU ``torch.Generator``; two draws from equal generator states are equal.
    padding : zero padding on each side (>= 0); offsets are uniform in {0, …, 2·padding}.
    flip : draw the flips (each with probability ½); False: no image is flipped.

    Returns
    -------
    (dy, dx, flips) : int64, int64 and bool CPU tensors of length ``n``, drawn in this order.
    """
    check_int("n", n, 0)
    check_int("padding", padding, 0)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, dtype=torch.int64)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, dtype=torch.int64)
    if flip:
        flips = torch.randint(0, 2, (n,), generator=generator, dtype=torch.int64).bool()
    else:
        flips = torch.zeros(n, dtype=torch.bool)
    return dy, dx, flips


def crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flips: torch.Tensor,
              padding: int = PADDING) -> torch.Tensor:
    """Crop with zero padding and flip, with given parameters (module docstring).

    Parameters
    ----------
    x : (N, C, H, W) tensor on any device and of any dtype.
    dy, dx : integer tensors of length N with values in [0, 2·padding] (top-left corner of the window
        in the padded image).
    flips : bool tensor of length N (mirror the crop left–right).
    padding : zero padding on each side.

    Returns
    -------
    Tensor of the shape, dtype and device of ``x`` (a new tensor; ``x`` is not modified).
    """
    _check_batch(x)
    check_int("padding", padding, 0)
    N, C, H, W = x.shape
    for name, t in (("dy", dy), ("dx", dx), ("flips", flips)):
        if tuple(t.shape) != (N,):
            raise ConfigError(name, f"must have one entry per image ({N})", tuple(t.shape))
    for name, t in (("dy", dy), ("dx", dx)):
        if N and (int(t.min()) < 0 or int(t.max()) > 2 * padding):
            raise ConfigError(name, f"must lie in [0, {2 * padding}] (2 · padding)",
                              (int(t.min()), int(t.max())))
    if N == 0:
        return x.clone()
    dev = x.device
    dy, dx, flips = dy.to(dev, torch.int64), dx.to(dev, torch.int64), flips.to(dev, torch.bool)
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    rows = dy[:, None] + torch.arange(H, device=dev)                       # (N, H)
    cols = dx[:, None] + torch.arange(W, device=dev)                       # (N, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    n = torch.arange(N, device=dev)[:, None, None]
    # advanced indices separated by a slice: the broadcast (N, H, W) dims come first, then C
    out = padded[n, :, rows[:, :, None], cols[:, None, :]]                  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = PADDING,
                     flip: bool = True) -> torch.Tensor:
    """Random crop with zero padding ``padding`` and random horizontal flip of a batch.

    Parameters
    ----------
    x : (N, C, H, W) tensor on any device.
    generator : CPU ``torch.Generator`` the offsets and flips are drawn from (:func:`draw_crop_flip`).
    padding : zero padding on each side (default 4, the CIFAR-10 standard).
    flip : also flip (default True).

    Returns
    -------
    The augmented batch, same shape, dtype and device as ``x``.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> random_crop_flip(torch.rand(8, 3, 32, 32), g).shape
    torch.Size([8, 3, 32, 32])
    """
    _check_batch(x)
    dy, dx, flips = draw_crop_flip(int(x.shape[0]), generator, padding, flip)
    return crop_flip(x, dy, dx, flips, padding)
