"""Single-layer CNN benchmark workloads: one training epoch of FGSM AT and of FGSM AT + GradAlign.

Fixed workload (both): 10,000 synthetic 32×32×3 images (``make_synthetic(10000, seed=0)``, 10
classes), the 4-filter CNN initialized with seed 0, batch 128 (79 steps, the same pre-drawn batch
order), ε = 10/255, Adam at a constant learning rate 0.003; GradAlign with λ = 0.36 (thesis Table 2.2
at ε = 10/255), η drawn from seed 1. One repeat = one full epoch of
:func:`toymodels.cnn.train._step` (attack, CE gradient, GradAlign gradient, Adam) from fresh copies of
the initial parameters and optimizer state.

* ``numba_s`` — the numba kernels (``backend="numba"``);
* ``numpy_s`` — the same epoch with the plain-numpy reference (``backend="numpy"``);
* ``torch_s`` — the same model, attack and loss in torch on the CPU (float64 like the kernels,
  ``torch.set_num_threads`` = numba's thread count; GradAlign by double backprop with
  ``create_graph=True``, differentiating through ∇ₓℓ(x + η) only, as the numba default) — the
  baseline of the target: ``torch_speedup = torch_s / numba_s ≥ 1``. Absent torch, ``torch_s`` is
  null, the target is not applicable and the row's ``notes`` say so (numba and numpy still run).
* ``gradalign_over_fgsm`` (GradAlign workload) — its numba epoch time over the FGSM epoch's, with
  ``gradalign_over_fgsm_goal`` = 2 and ``gradalign_over_fgsm_met`` (ratio ≤ goal; null under
  ``--quick``).

  Since :func:`toymodels.cnn.train._step` computes FGSM + GradAlign with the fused kernel
  :func:`toymodels.cnn.model.fgsm_gradalign_loss_and_grad` (one clean input-gradient pass for both;
  equal to the three separate passes to rounding, tests/test_cnn_model.py), ``numba_s`` of the
  GradAlign workload is the fused epoch.

Baselines (issue 17): the speed-up column (``numpy_s``) is against the faster of the two vectorized
baselines of the same epoch measured in the same run, torch CPU (``torch_s``) and the numpy reference
(``backend="numpy"``, already one batched im2col-style pass per layer), named in ``baseline`` ("torch
cpu" or "numpy reference"); ``reference_s`` is always the readable numpy reference. On the 2-core
benchmark machine the numpy reference is the faster one (torch in float64 with double backprop pays
its per-op and autograd overhead on 4-filter convolutions), so no separate lean-numpy CNN was written.
The torch repeats stop early once they have used ``--numpy-budget`` seconds (``torch_repeats``), like
the numpy reference's.

Physical limit per image (one core: 76 GFLOP/s): the forward pass is the 3×3 convolution,
2·9·C·M·H·W = 221 000 flops, plus the 4096 × 10 linear layer, 82 000: ≈ 3·10⁵. FGSM AT = one input
gradient (forward + backward ≈ 3 forwards) + one training step (≈ 3 forwards): ≈ 1.8·10⁶ flops per
image; with GradAlign another input gradient and its double backward (≈ 6 forwards more): ≈ 3.6·10⁶.
Bytes: the clean and the adversarial batch, 2 × 3072 × 8 B ≈ 49 KB per image. Compute-bound (in the
floor; at 4 filters the convolutions are far from GEMM efficiency).

Under ``--quick`` the epoch has 1,000 images (8 steps).
"""
from __future__ import annotations

import time

import numpy as np

from ..rng import stream
from . import BenchContext, audit, best_of, numba_threads, workload

N_FULL = 10_000
BATCH = 128
EPS = 10 / 255
LAM = 0.36
LR = 0.003
#: the issue's goal for the GradAlign epoch: at most this many FGSM epochs
RATIO_GOAL = 2.0
_CACHE: dict = {}


def _setup(ctx: BenchContext):
    from ..cnn import model
    from ..datasets import make_synthetic

    n = ctx.steps(N_FULL)
    key = n
    if key not in _CACHE:
        x, y = make_synthetic(n, seed=0)
        p0 = model.init_params(3, 32, 32, 4, 10, seed=0)
        perm = stream(0).permutation(n)
        batches = [np.sort(perm[i:i + BATCH]) for i in range(0, n, BATCH)]
        _CACHE[key] = (x, y, p0, batches)
    return _CACHE[key]


def _epoch_ours(x, y, p0, batches, lam, backend):
    from ..cnn.model import CNNParams
    from ..cnn.train import TrainConfig, _Adam, _step, resolve

    cfg = resolve(TrainConfig(attack="fgsm", eps=EPS, grad_align=lam, schedule="constant", lr=LR))
    theta = p0.flat()
    params = CNNParams.from_flat(theta, p0.shapes)
    opt = _Adam(theta.size)
    rng = stream(1)
    for idx in batches:
        _step(params, theta, opt, x[idx], y[idx], cfg, rng, LR, backend)
    return theta


def _epoch_torch(torch, x, y, p0, batches, lam):
    from ..cnn.torch_twin import to_torch

    F = torch.nn.functional
    net = to_torch(p0)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(1)
    for idx in batches:
        xb, yb = X[idx], Y[idx]
        xr = xb.clone().requires_grad_(True)
        g1, = torch.autograd.grad(F.cross_entropy(net(xr), yb, reduction="sum"), xr)
        xa = (xb + EPS * g1.sign()).clamp(0, 1)
        loss = F.cross_entropy(net(xa), yb)
        if lam > 0:
            eta = (torch.rand(xb.shape, generator=gen, dtype=xb.dtype) * 2 - 1) * EPS
            x2 = (xb + eta).requires_grad_(True)
            g2, = torch.autograd.grad(F.cross_entropy(net(x2), yb, reduction="sum"), x2, create_graph=True)
            cos = F.cosine_similarity(g1.flatten(1), g2.flatten(1), dim=1)
            loss = loss + lam * (1 - cos).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def _run(ctx: BenchContext, lam: float) -> dict:
    x, y, p0, batches = _setup(ctx)
    t = time.perf_counter()
    _epoch_ours(x, y, p0, [np.arange(min(BATCH, len(y)))], lam, "numba")      # compile / cache load
    compile_s = time.perf_counter() - t
    numba_s, _, _ = best_of(lambda: _epoch_ours(x, y, p0, batches, lam, "numba"), lambda: (), ctx.repeats)
    numpy_s, numpy_rep, _ = best_of(lambda: _epoch_ours(x, y, p0, batches, lam, "numpy"), lambda: (),
                                    ctx.repeats, ctx.numpy_budget_s)
    out = {"numba_s": numba_s, "numpy_s": numpy_s, "numpy_repeats": numpy_rep, "compile_s": compile_s,
           "images": len(y), "batch": BATCH, "filters": 4, "threads": numba_threads(), "torch_s": None,
           "torch_speedup": None}
    flops = (3.6e6 if lam > 0 else 1.8e6)
    note = "compute-bound floor (3x3 convolutions + linear layer); per image"
    try:
        import torch
    except ImportError:
        out["notes"] = ["torch not installed: the torch_s baseline (and its target) skipped; the speed-up "
                        "column is against the numpy reference"]
        return audit(out, "numpy reference (torch absent)", numpy_s, numpy_s, flops, 2 * 3072 * 8, len(y), note)
    prev = torch.get_num_threads()
    torch.set_num_threads(numba_threads())
    try:
        torch_s, torch_rep, _ = best_of(lambda: _epoch_torch(torch, x, y, p0, batches, lam), lambda: (),
                                        ctx.repeats, ctx.numpy_budget_s)
    finally:
        torch.set_num_threads(prev)
    out.update({"torch_s": torch_s, "torch_repeats": torch_rep, "torch_speedup": torch_s / numba_s,
                "torch_version": torch.__version__})
    baseline, base_s = ("torch cpu", torch_s) if torch_s < numpy_s else ("numpy reference", numpy_s)
    return audit(out, baseline, base_s, numpy_s, flops, 2 * 3072 * 8, len(y), note)


@workload("cnn_epoch_fgsm", target=1.0, metric="torch_speedup",
          description="one FGSM-AT epoch, 10k 32×32×3 images, 4 filters, batch 128 (target: ≥ torch CPU)")
def cnn_epoch_fgsm(ctx: BenchContext) -> dict:
    res = _run(ctx, 0.0)
    _CACHE[("fgsm_numba_s", res["images"])] = res["numba_s"]
    return res


@workload("cnn_epoch_gradalign", target=1.0, metric="torch_speedup",
          description="one FGSM+GradAlign epoch (λ = 0.36), same problem; also reports gradalign_over_fgsm "
                      "(goal <= 2)")
def cnn_epoch_gradalign(ctx: BenchContext) -> dict:
    res = _run(ctx, LAM)
    key = ("fgsm_numba_s", res["images"])
    if key not in _CACHE:
        cnn_epoch_fgsm(ctx)
    fgsm_s = _CACHE[key]
    res.update(fgsm_numba_s=fgsm_s, gradalign_over_fgsm=res["numba_s"] / fgsm_s, gradalign_over_fgsm_goal=RATIO_GOAL,
               gradalign_over_fgsm_met=None if ctx.quick else bool(res["numba_s"] / fgsm_s <= RATIO_GOAL))
    return res
