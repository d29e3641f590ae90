"""Quality of the linear approximation of the loss in the input (thesis App. 2.10.1, Fig. 2.10).

For an example (x, y) and a perturbation δ the linearization error is

    e(δ) = |ℓ(x + δ) − ℓ(x) − ⟨δ, ∇ₓℓ(x)⟩|,      ℓ = cross-entropy of the model's logits,

with x + δ not clipped to [0, 1] (the appendix fixes ‖δ‖∞, not the image box). The experiment starts
from δ₀ ∈ {−ε, ε}^d — the FGSM direction ε·sign ∇ₓℓ(x) or a uniformly random corner — and zeroes a
growing fraction f of its coordinates (nested supports), so that ‖δ‖∞ = ε while ‖δ‖₂ = ε·√(d − ⌈f·d⌉)
(for a gradient without zero entries). The thesis's finding: e grows with ‖δ‖₂ at fixed ‖δ‖∞, more for
δ_FGSM than for δ_random, for standard and PGD-trained ResNet-18 alike.

The perturbations are drawn by :func:`toymodels.cnn.metrics.zeroed_corners`, the same code as the
single-layer CNN's :func:`toymodels.cnn.metrics.linearization_curve`, so a ``"cnn"`` model in float64
gives that function's numbers (the test oracle).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..cnn.metrics import zeroed_corners
from ..errors import ConfigError, check_choice, check_nonneg
from ..rng import child_seed

__all__ = ["FRACTIONS", "linearization_curve", "final_linearization"]

#: fractions of zeroed coordinates of the thesis's curve (11 points from ‖δ‖₂ = √d·ε down to 0)
FRACTIONS = tuple(k / 10 for k in range(11))


def _losses(net, x, y, chunk: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([F.cross_entropy(net(x[i:i + chunk]), y[i:i + chunk], reduction="none")
                          for i in range(0, len(y), chunk)])


def linearization_curve(net, x, y, eps: float, fractions=FRACTIONS, *, start: str = "fgsm", seed=0,
                        chunk: int = 256) -> dict:
    """Linearization error e(δ) (module docstring) of ``net`` on the batch (x, y) for δ₀ = FGSM or
    ``random`` start and each fraction of zeroed coordinates.

    Returns {"fractions", "l2": per fraction the mean ‖δ‖₂ over the examples, "error": (len(fractions),
    N) numpy array of e per example}. ``net`` is evaluated as given (call ``net.eval()`` first for
    test-time BatchNorm); δ is drawn from ``numpy.random.default_rng(seed)``."""
    check_nonneg("eps", eps)
    check_choice("start", start, ("fgsm", "random"))
    fr = [float(f) for f in fractions]
    if not fr or not all(0.0 <= f <= 1.0 for f in fr):
        raise ConfigError("fractions", "must be a non-empty list of numbers in [0, 1]", fractions)
    N, d = len(y), x[0].numel()
    xg = x.detach().clone().requires_grad_(True)
    grads = []
    for i in range(0, N, chunk):
        loss = F.cross_entropy(net(xg[i:i + chunk]), y[i:i + chunk], reduction="sum")
        grads.append(torch.autograd.grad(loss, xg)[0][i:i + chunk])
    g = torch.cat(grads).detach()
    base = g.double().cpu().numpy() if start == "fgsm" else None
    deltas = zeroed_corners(base, (N, d), float(eps), fr, np.random.default_rng(seed))
    l0 = _losses(net, x, y, chunk)
    gflat = g.reshape(N, d)
    errors = np.empty((len(fr), N))
    for j in range(len(fr)):
        dl = torch.as_tensor(deltas[j], dtype=x.dtype, device=x.device)
        lin = (gflat * dl).sum(dim=1)
        ls = _losses(net, x + dl.reshape(x.shape), y, chunk)
        errors[j] = (ls - l0 - lin).abs().double().cpu().numpy()
    l2 = np.sqrt((deltas ** 2).sum(axis=2)).mean(axis=1)
    return {"fractions": fr, "l2": l2, "error": errors}


def final_linearization(net, x, y, eps: float, seed: int) -> dict:
    """The final evaluation of a ``--final-linearization`` run: for both starts, the mean error per
    ‖δ‖₂, {"linearization_fgsm": {"<‖δ‖₂>": mean e}, "linearization_random": {...}} with ‖δ‖₂ the mean
    over the points (6 significant digits; the x of the recipe's profile plot), the same points and
    the fixed fractions :data:`FRACTIONS`; δ from the stream ``(seed, "linearization-<start>")``."""
    was = net.training
    net.eval()
    out = {}
    try:
        for start in ("fgsm", "random"):
            c = linearization_curve(net, x, y, eps, FRACTIONS, start=start,
                                    seed=child_seed(seed, f"linearization-{start}"))
            means = c["error"].mean(axis=1)
            out[f"linearization_{start}"] = {f"{l2:.6g}": float(e) for l2, e in zip(c["l2"], means)
                                             if math.isfinite(e)}
    finally:
        net.train(was)
    return out
