"""Optional torch twin of the single-layer CNN (torch is imported lazily; it is not a dependency).

    nn.Sequential(nn.Conv2d(C, M, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(M*H*W, K))

Parameters map 1:1 to :class:`toymodels.cnn.model.CNNParams`: ``[0].weight = Wc``, ``[0].bias = bc``,
``[3].weight = U``, ``[3].bias = c``. The twin is float64 unless another dtype is asked for, so that
its logits and autograd gradients can be compared with the numba kernels to rounding error.
"""
from __future__ import annotations

import numpy as np

from .model import CNNParams, _params

__all__ = ["require_torch", "make_torch_model", "to_torch", "from_torch"]


def require_torch():
    """Import and return torch, or raise an ImportError saying how to get it."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("toymodels.cnn.torch_twin needs PyTorch, which is optional: install it with "
                          "`pip install torch` (or `pip install -e .[torch]`)") from exc
    return torch


def make_torch_model(C: int = 3, H: int = 32, W: int = 32, M: int = 4, K: int = 10, *, dtype=None):
    """A fresh ``nn.Sequential`` twin (torch's own default init) in ``dtype`` (default float64)."""
    torch = require_torch()
    nn = torch.nn
    dtype = torch.float64 if dtype is None else dtype
    return nn.Sequential(nn.Conv2d(C, M, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(M * H * W, K)).to(dtype)


def to_torch(params: CNNParams, H: int | None = None, W: int | None = None, *, dtype=None):
    """The torch twin holding a copy of ``params``. H, W default to a square image
    (H = W = √(U.shape[1] / M)); give them for non-square inputs."""
    torch = require_torch()
    Wc, bc, U, c = _params(params)
    M, C = Wc.shape[:2]
    K, F = U.shape
    if H is None and W is None:
        side = int(round(np.sqrt(F // M)))
        if side * side * M != F:
            raise ValueError(f"U has {F} columns = M·H·W with M = {M}, not a square image: pass H and W")
        H = W = side
    elif H is None or W is None or M * H * W != F:
        raise ValueError(f"H and W must both be given with M·H·W = {F} (M = {M})")
    model = make_torch_model(C, H, W, M, K, dtype=dtype)
    with torch.no_grad():
        for prm, arr in zip((model[0].weight, model[0].bias, model[3].weight, model[3].bias),
                            (Wc, bc, U, c)):
            prm.copy_(torch.from_numpy(arr))
    return model


def from_torch(module) -> CNNParams:
    """CNNParams (float64 numpy copies) of a twin built by :func:`make_torch_model`."""
    torch = require_torch()
    conv, lin = module[0], module[3]
    if not isinstance(conv, torch.nn.Conv2d) or not isinstance(lin, torch.nn.Linear):
        raise ValueError("module must be nn.Sequential(Conv2d, ReLU, Flatten, Linear) from make_torch_model")
    if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1) or conv.bias is None:
        raise ValueError("the Conv2d must be 3×3 with padding 1, stride 1 and a bias")

    def arr(t):
        return t.detach().cpu().to(torch.float64).numpy().copy()

    return CNNParams(arr(conv.weight), arr(conv.bias), arr(lin.weight), arr(lin.bias))
