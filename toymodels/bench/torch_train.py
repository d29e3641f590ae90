"""Torch training-step benchmarks (issue 7): the GradAlign overhead and the FGSM-AT epoch of PreAct
ResNet-18, on the torch device (cuda if present, else cpu — reported as ``torch_device``).

One "epoch" = one pass of :func:`toymodels.torch.train.at_step` (attack, optional GradAlign double
backprop, SGD step; model in train mode) over ``images`` uniform-random 32×32×3 images with random
labels (the content does not change the cost), batch 128, ε = 8/255, λ = 0.2 (thesis Table 2.2 at
8/255), float32, after one warm-up batch; on the CPU torch uses 1 thread (``torch_threads``). Times are the best of the repeats (CPU: 1 repeat for the
ResNet workloads, they are slow); FGSM and GradAlign epochs alternate, so both see the same
background load.

* ``torch_gradalign_over_fgsm_cnn`` — the single-layer CNN (4 filters), 10,000 images (``--quick``:
  1,000).
* ``torch_gradalign_over_fgsm_resnet18`` — PreAct ResNet-18; cuda: 10,000 images; cpu: 256 images
  (``--quick``: 128 on cuda, 32 on cpu).

In these two rows the table's ``numpy_s`` column is the FGSM+GradAlign epoch and ``numba_s`` the FGSM
epoch, so ``speedup`` = ``gradalign_over_fgsm`` = the GradAlign overhead (goal ≤ 2; the thesis reports
≈ 3 on a V100); ``gradalign_over_fgsm_met`` says whether it is met.

* ``torch_fgsm_epoch_resnet18`` — one FGSM-AT epoch of PreAct ResNet-18 on CIFAR-10-sized data (50,000
  images): measured on cuda; on the CPU the epoch time is *extrapolated* from 256 timed images
  (``extrapolated: true``, ``timed_images``). ``numpy_s`` = ``numba_s`` = that time (speedup 1, no
  baseline). Without torch every workload is skipped (``skipped``: the reason) and has no numbers.
"""
from __future__ import annotations

import time

from . import BenchContext, workload

BATCH = 128
EPS = 8 / 255
LAM = 0.2
RATIO_GOAL = 2.0
CIFAR_TRAIN = 50_000


def random_images(n: int, device):
    """(x, y): n uniform-random 32×32×3 images and random labels of 10 classes (the content does not
    change the cost), drawn from a fixed CPU generator, on ``device``."""
    import torch

    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 3, 32, 32, generator=g).to(device),
            torch.randint(0, 10, (n,), generator=g).to(device))


def at_epoch(model_name: str, cfg, x, y, device, *, lr: float):
    """``one_epoch(limit=None)``: one pass of :func:`toymodels.torch.train.at_step` with ``cfg`` over (x, y)
    in batches of :data:`BATCH` (the first ``limit`` images only, e.g. for a warm-up) on a fresh
    ``model_name`` (seed 0, train mode, SGD with ``lr``), synchronized on cuda."""
    import torch

    from ..elle_a import ElleA
    from ..torch.models import build_model
    from ..torch.train import _reg_and_lambda, at_step

    norm = None if model_name == "cnn" else ((0.5,) * 3, (0.25,) * 3)
    torch.manual_seed(0)
    net = build_model(model_name, 10, 3, 32, normalize=norm).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)

    def step_fn(loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def one_epoch(limit=None):
        gen = torch.Generator().manual_seed(1)
        # ELLE-A: a fresh λ schedule per epoch (λ starts at 0: the epoch measures the mostly-off cost)
        sched = ElleA(_reg_and_lambda(cfg)[1]) if cfg.reg == "elle-a" else None
        stop = len(y) if limit is None else min(len(y), limit)
        for i in range(0, stop, BATCH):
            at_step(cfg, net, net, x[i:i + BATCH], y[i:i + BATCH], gen, step_fn, lambda: _Null(), sched=sched)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return one_epoch


def _epoch_times(model_name: str, n: int, lams, repeats: int, device) -> tuple[list, list]:
    """Best epoch seconds and warm-up seconds of FGSM AT (+ GradAlign λ) over n images, one entry per
    λ in ``lams``; the repeats alternate between the λ's so that all see the same background load."""
    from ..torch.train import TrainConfig

    x, y = random_images(n, device)

    def make_epoch(lam):
        cfg = TrainConfig(task="at", attack="fgsm", eps=EPS, alpha=EPS, grad_align=lam)
        return at_epoch(model_name, cfg, x, y, device, lr=0.01)

    best, warm = interleaved_best([make_epoch(lam) for lam in lams], repeats, device)
    return best, warm


def interleaved_best(epochs, repeats: int, device) -> tuple[list, list]:
    """(best seconds, warm-up seconds) per callable of ``epochs``: each is called once with
    :data:`BATCH` (warm-up), then all of them in turn ``repeats`` times, the shortest time kept — the
    methods alternate, so they all see the same background load. On the CPU torch runs on 1 thread
    (its intra-op pool spin-waits badly on a busy machine)."""
    import torch

    prev = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        warm = []
        for ep in epochs:
            t = time.perf_counter()
            ep(BATCH)
            warm.append(time.perf_counter() - t)
        best = [float("inf")] * len(epochs)
        for _ in range(max(1, repeats)):
            for k, ep in enumerate(epochs):
                t = time.perf_counter()
                ep()
                best[k] = min(best[k], time.perf_counter() - t)
    finally:
        torch.set_num_threads(prev)
    return best, warm


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _ratio(ctx: BenchContext, model_name: str, n_cpu: int, n_cuda: int) -> dict:
    from ..torch.device import device_name, resolve_device

    dev = resolve_device("auto")
    n = (n_cuda if dev.type == "cuda" else n_cpu)
    if ctx.quick:
        n = min(n, 1000 if model_name == "cnn" else (128 if dev.type == "cuda" else 32))
    reps = ctx.repeats if (model_name == "cnn" or dev.type == "cuda") else 1
    (t_f, t_g), (w_f, w_g) = _epoch_times(model_name, n, (0.0, LAM), reps, dev)
    r = t_g / t_f
    return {"numpy_s": t_g, "numba_s": t_f, "speedup": r, "compile_s": w_f + w_g,
            "fgsm_epoch_s": t_f, "gradalign_epoch_s": t_g, "gradalign_over_fgsm": r,
            "gradalign_over_fgsm_goal": RATIO_GOAL,
            "gradalign_over_fgsm_met": None if ctx.quick else bool(r <= RATIO_GOAL),
            "images": n, "batch": BATCH, "model": model_name, "torch_device": device_name(dev),
            "torch_threads": 1 if dev.type == "cpu" else None, "repeats": reps, "lambda": LAM,
            "baseline": "numpy_s column = FGSM+GradAlign epoch; numba_s column = FGSM epoch"}


@workload("torch_gradalign_over_fgsm_cnn", target=None, needs=("torch",),
          description="GradAlign/FGSM AT epoch-time ratio, single-layer CNN, 10k images (goal <= 2)")
def torch_gradalign_cnn(ctx: BenchContext) -> dict:
    return _ratio(ctx, "cnn", 10_000, 10_000)


@workload("torch_gradalign_over_fgsm_resnet18", target=None, needs=("torch",),
          description="GradAlign/FGSM AT epoch-time ratio, PreAct ResNet-18 (cpu 256 / cuda 10k images; goal <= 2)")
def torch_gradalign_resnet(ctx: BenchContext) -> dict:
    return _ratio(ctx, "preact-resnet18", 256, 10_000)


@workload("torch_fgsm_epoch_resnet18", target=None, needs=("torch",),
          description="FGSM-AT epoch of PreAct ResNet-18 on 50k CIFAR-sized images (cpu: extrapolated from 256)")
def torch_fgsm_epoch_resnet(ctx: BenchContext) -> dict:
    from ..torch.device import device_name, resolve_device

    dev = resolve_device("auto")
    n = CIFAR_TRAIN if dev.type == "cuda" else 256
    if ctx.quick:
        n = 32 if dev.type == "cpu" else 5_000
    reps = ctx.repeats if dev.type == "cuda" else 1
    (t,), (warm,) = _epoch_times("preact-resnet18", n, (0.0,), reps, dev)
    epoch = t * CIFAR_TRAIN / n
    return {"numpy_s": epoch, "numba_s": epoch, "speedup": 1.0, "compile_s": warm,
            "epoch_s": epoch, "extrapolated": n != CIFAR_TRAIN, "timed_images": n, "timed_s": t,
            "images_per_s": n / t, "torch_device": device_name(dev), "torch_threads": 1 if dev.type == "cpu" else None,
            "batch": BATCH, "repeats": reps}
