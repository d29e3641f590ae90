"""Shared targets for the attack tests: small torch classifiers trained for a few seconds on the CPU,
whose robust accuracy at the tests' radii lies well inside (0, clean accuracy), so that attacks of
different strength give different numbers. Cached per process (``functools.lru_cache``)."""
from __future__ import annotations

import functools

#: ℓ∞ / ℓ₂ radii at which the trained CNN is neither broken everywhere nor robust everywhere
EPS_LINF = 8 / 255
EPS_L2 = 0.5


@functools.lru_cache(maxsize=None)
def trained_cnn(seed: int = 0, n_test: int = 400, filters: int = 8, epochs: int = 6):
    """``(model, x_test, y_test)``: the single-layer CNN (``build_model("cnn")``, ``filters`` filters, float32,
    eval mode) trained with Adam on 2000 ``photos`` images drawn with ``seed``; ``n_test`` test points."""
    import torch
    import torch.nn.functional as F

    from toymodels.torch.data import load
    from toymodels.torch.device import seed_everything
    from toymodels.torch.models import build_model

    xtr, ytr, xte, yte, K = load("photos", None, 2000, n_test, seed)
    seed_everything(seed, "tests/attack-models")
    model = build_model("cnn", K, xtr.shape[1], xtr.shape[2], filters=filters)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(ytr), generator=g).split(100):
            opt.zero_grad()
            F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
    return model.eval(), xte, yte
