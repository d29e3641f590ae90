"""Feature-sparsity coefficient at chosen layers of any ``nn.Module`` (thesis Ch. 6, l. 3155), the
torch twin of :func:`toymodels.relu.metrics.feature_sparsity`.

For the activation matrix A (n inputs × m neurons) of a layer,

    coef = (1 / (n m)) Σ_{j ∈ K} #{i : A[i, j] ≠ 0},

where K keeps one representative per group of highly correlated neurons: neurons that are not
identically zero are visited in order, and neuron j is kept unless its Pearson correlation over the
n inputs with an already kept neuron is ≥ ``threshold`` (0.95). A neuron constant over the inputs has
no correlation and is kept. The correlation matrix is one matmul on the model's device; the greedy
pass runs on the CPU. Large layers (conv feature maps: m = C·H·W) can be subsampled to
``max_neurons`` columns chosen at random once (``seed``).

Layers are named as in ``model.named_modules()`` of the network (a leading
:class:`~toymodels.torch.models.Normalize` wrapper is skipped): ``"NAME"`` takes the module's output, ``"NAME:in"``
its input, ``"NAME:relu"`` ReLU of its output (for nets whose ReLUs are functional, e.g.
``layer4.1.bn2:relu`` or ``dense3.15.bn2:relu``), ``"auto"`` the input of the last ``nn.Linear`` (the penultimate features). Activations are
flattened per input.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, check_range

__all__ = ["feature_sparsity", "collect_activations", "feature_sparsity_at", "resolve_layer"]


def feature_sparsity(act: torch.Tensor, threshold: float = 0.95) -> float:
    """Feature-sparsity coefficient of an (n, m) activation matrix (see the module docstring)."""
    if act.dim() != 2 or act.numel() == 0:
        raise ConfigError("act", "must be a non-empty 2-D tensor (inputs × neurons)", tuple(act.shape))
    check_range("threshold", threshold, -1.0, 1.0)
    act = act.detach().double()
    n, m = act.shape
    nz = act != 0
    active = torch.nonzero(nz.any(0)).flatten()
    a = act[:, active]
    c = a - a.mean(0)
    sd = torch.sqrt((c * c).sum(0))
    ok = sd > 1e-12 * a.abs().amax(0).clamp_min(1e-300)
    u = torch.where(ok, c / torch.where(ok, sd, torch.ones_like(sd)), torch.zeros_like(c))
    corr = (u.T @ u).cpu().numpy()
    ok = ok.cpu().numpy()
    keep = np.zeros(active.numel(), dtype=bool)
    for q in range(active.numel()):
        # the greedy pass is sequential; one vectorized row test per neuron
        keep[q] = not (ok[q] and np.any(keep & (corr[q] >= threshold)))
    return float(nz[:, active[torch.from_numpy(keep).to(active.device)]].sum()) / (n * m)


def resolve_layer(model: nn.Module, spec: str) -> tuple[nn.Module, str]:
    """(module, side) for a layer spec ``"NAME"`` (side "out"), ``"NAME:in"``, ``"NAME:relu"`` or
    ``"auto"`` (the input of the last Linear)."""
    model = getattr(model, "module", model)
    if spec == "auto":
        lin = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not lin:
            raise ConfigError("sparsity_layers", "'auto' needs a model with an nn.Linear layer", spec)
        return lin[-1], "in"
    name, _, side = spec.partition(":")
    if side not in ("", "in", "relu"):
        raise ConfigError("sparsity_layers", "entries must be NAME, NAME:in, NAME:relu or auto", spec)
    from .models import Normalize

    # names are those of the network itself: a leading Normalize wrapper (Sequential(Normalize, net))
    # is skipped, so "layer4" means the same with and without input normalization
    if isinstance(model, nn.Sequential) and len(model) == 2 and isinstance(model[0], Normalize):
        model = model[1]
    mods = dict(model.named_modules())
    if name not in mods:
        listed = ", ".join(k for k in mods if k and k.count(".") < 2)
        raise ConfigError("sparsity_layers", "entries must name a module of the model: auto or a name such as "
                          f"{listed[:240]}{'...' if len(listed) > 240 else ''}", spec)
    return mods[name], side or "out"


@torch.no_grad()
def collect_activations(model: nn.Module, x: torch.Tensor, layers=("auto",), *, batch_size: int = 256,
                        max_neurons: int | None = None, seed: int = 0) -> dict:
    """{layer spec: (n, m) activation matrix} over the inputs ``x`` (forward hooks; the model's
    train/eval mode is left as it is — call ``model.eval()`` first for BatchNorm models)."""
    chunks: dict = {s: [] for s in layers}
    hooks = []
    for spec in layers:
        mod, side = resolve_layer(model, spec)

        def hook(_m, inp, out, spec=spec, side=side):
            t = inp[0] if side == "in" else (out.relu() if side == "relu" else out)
            chunks[spec].append(t.detach().flatten(1))

        hooks.append(mod.register_forward_hook(hook))
    try:
        for i in range(0, len(x), batch_size):
            model(x[i:i + batch_size])
    finally:
        for h in hooks:
            h.remove()
    out = {}
    g = torch.Generator().manual_seed(seed)
    for spec, parts in chunks.items():
        A = torch.cat(parts)
        if max_neurons is not None and A.shape[1] > max_neurons:
            idx = torch.randperm(A.shape[1], generator=g)[:max_neurons].sort().values
            A = A[:, idx.to(A.device)]
        out[spec] = A
    return out


def feature_sparsity_at(model: nn.Module, x: torch.Tensor, layers=("auto",), *, threshold: float = 0.95,
                        max_neurons: int | None = None, seed: int = 0, batch_size: int = 256) -> dict:
    """{layer spec: feature-sparsity coefficient} of ``model`` over the inputs ``x``."""
    acts = collect_activations(model, x, layers, batch_size=batch_size, max_neurons=max_neurons, seed=seed)
    return {spec: feature_sparsity(A, threshold) for spec, A in acts.items()}
