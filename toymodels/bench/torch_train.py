"""Torch training-step benchmarks (issue 7): the GradAlign overhead and the FGSM-AT epoch of PreAct
ResNet-18, on the torch device (cuda if present, else cpu — reported as ``torch_device``).

One "epoch" = one pass of :func:`toymodels.torch.train.at_step` (attack, optional GradAlign double
backprop, SGD step; model in train mode) over ``images`` uniform-random 32×32×3 images with random
labels (the content does not change the cost), batch 128, ε = 8/255, λ = 0.2 (thesis Table 2.2 at
8/255), float32, after one warm-up batch; on the CPU torch uses 1 thread (``torch_threads``). Times are
the best of the repeats (CPU: at most 2 repeats for the ResNet workloads, they are slow); FGSM and
GradAlign epochs alternate, so both see the same background load.

* ``torch_gradalign_over_fgsm_cnn`` — the single-layer CNN (4 filters), 10,000 images (``--quick``:
  1,000).
* ``torch_gradalign_over_fgsm_resnet18`` — PreAct ResNet-18; cuda: 10,000 images; cpu: 256 images
  (``--quick``: 128 on cuda, 32 on cpu).

In these two rows the table's ``numpy_s`` column is the FGSM+GradAlign epoch and ``numba_s`` the FGSM
epoch, so ``speedup`` = ``gradalign_over_fgsm`` = the GradAlign overhead (goal ≤ 2.5 on the CPU, ≤ 3 on
a GPU, :data:`RATIO_GOAL`; the thesis reports ≈ 3 on a V100); ``gradalign_over_fgsm_met`` says whether
it is met. The models use :func:`toymodels.torch.conv.use_fast_convs` (cheap conv and, on the CPU,
batch-norm double backward); by operation count exact GradAlign costs ≥ 2.2× FGSM (11 vs 5
convolution-sized products per step), so the remaining margin is the element-wise work.

* ``torch_fgsm_epoch_resnet18`` — one FGSM-AT epoch of PreAct ResNet-18 on CIFAR-10-sized data (50,000
  images): measured on cuda; on the CPU the epoch time is *extrapolated* from 256 timed images
  (``extrapolated: true``, ``timed_images``). ``numpy_s`` = ``numba_s`` = that time (speedup 1, no
  baseline). Without torch every workload is skipped (``skipped``: the reason) and has no numbers.

* ``torch_speed_<method>_resnet18``, method in :data:`SPEED_METHODS` (issue 16) — one training epoch
  (crop/flip augmentation, :func:`speed_epoch`) of PreAct ResNet-18 in float32 (``numpy_s`` column) and
  in the fast configuration of :mod:`toymodels.torch.speed` (``numba_s`` column: bf16 autocast of the
  whole step, channels-last, batches built on the device, and on cuda ``torch.compile`` of the training
  forward), measured alternately in the same run with cuDNN autotuning on cuda; ``speedup`` = float32 /
  fast. Reports ``float32_images_per_s``, ``fast_images_per_s`` and both epoch times extrapolated to
  50,000 images; the FGSM row adds the issue's goal (``fast_epoch_50k_goal_s`` = 3 s on a GPU) and
  ``fast_epoch_50k_met`` (None on the cpu and under ``--quick``). cuda: 10,240 images (``--quick``:
  2,560), batch 128; cpu: 64 images (``--quick``: 16), batch = images, 1 thread, 1 repeat.
"""
from __future__ import annotations

import time

from . import BenchContext, workload

BATCH = 128
EPS = 8 / 255
LAM = 0.2
#: the GradAlign/FGSM epoch-time goal per device type (issue 14: 2.8× on the CPU, 3.28× on an H100 before)
RATIO_GOAL = {"cpu": 2.5, "cuda": 3.0}
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

    from ..torch.cpu_memory import keep_freed_memory

    prev = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
        keep_freed_memory()           # as toymodels.torch.train.run does on the CPU (torch.cpu_memory)
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
    reps = ctx.repeats if (model_name == "cnn" or dev.type == "cuda") else min(ctx.repeats, 2)
    (t_f, t_g), (w_f, w_g) = _epoch_times(model_name, n, (0.0, LAM), reps, dev)
    r = t_g / t_f
    goal = RATIO_GOAL.get(dev.type)
    return {"numpy_s": t_g, "numba_s": t_f, "speedup": r, "compile_s": w_f + w_g,
            "fgsm_epoch_s": t_f, "gradalign_epoch_s": t_g, "gradalign_over_fgsm": r,
            "gradalign_over_fgsm_goal": goal,
            "gradalign_over_fgsm_met": None if (ctx.quick or goal is None) else bool(r <= goal),
            "images": n, "batch": BATCH, "model": model_name, "torch_device": device_name(dev),
            "torch_threads": 1 if dev.type == "cpu" else None, "repeats": reps, "lambda": LAM,
            "baseline": "numpy_s column = FGSM+GradAlign epoch; numba_s column = FGSM epoch"}


@workload("torch_gradalign_over_fgsm_cnn", target=None, needs=("torch",),
          description="GradAlign/FGSM AT epoch-time ratio, single-layer CNN, 10k images (goal: cpu <= 2.5, cuda <= 3)")
def torch_gradalign_cnn(ctx: BenchContext) -> dict:
    return _ratio(ctx, "cnn", 10_000, 10_000)


@workload("torch_gradalign_over_fgsm_resnet18", target=None, needs=("torch",),
          description="GradAlign/FGSM AT epoch-time ratio, PreAct ResNet-18 (cpu 256 / cuda 10k images; goal: cpu <= 2.5, cuda <= 3)")
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


# ------------------------------------------------------------------------------------------------
# issue 16, "Speed on a GPU": float32 against the fast configuration, in the same run
# ------------------------------------------------------------------------------------------------
#: the training methods of the speed workloads ``torch_speed_<method>_resnet18``
SPEED_METHODS = ("standard", "fgsm", "gradalign", "sam")
#: issue 16's goal for one FGSM-AT epoch of PreAct ResNet-18 on 50,000 images on a GPU (seconds)
FGSM_EPOCH_GOAL_S = 3.0


def speed_epoch(method: str, x, y, device, *, fast: bool, compile_model: bool = False, batch: int = BATCH):
    """``one_epoch(limit=None)``: one training epoch of a fresh PreAct ResNet-18 (seed 0, SGD lr 0.01,
    momentum 0.9) over (x, y) with the standard crop/flip augmentation, as :mod:`toymodels.torch.train`
    runs it — ``standard`` (clean cross-entropy), ``fgsm`` (FGSM-AT, α = ε = 8/255), ``gradalign``
    (FGSM + GradAlign λ = 0.2, :func:`toymodels.torch.train.at_step`) or ``sam`` (ρ = 0.05,
    :func:`toymodels.torch.sam.sam_update`) — in float32 (``fast=False``: default layout, batches
    built step by step) or in the fast configuration (``fast=True``: bf16 autocast of the whole step,
    channels-last, batches built on the device per epoch; ``compile_model``: also ``torch.compile`` of
    the training forward), :mod:`toymodels.torch.speed`. ``limit`` trains on the first ``limit`` images
    only (a warm-up). Synchronized on cuda."""
    import torch

    from ..torch import speed
    from ..torch.models import build_model
    from ..torch.train import TrainConfig, at_step

    torch.manual_seed(0)
    net = build_model("preact-resnet18", 10, 3, 32, normalize=((0.5,) * 3, (0.25,) * 3)).to(device).train()
    speed.prepare_model(net, channels_last=fast)
    model = speed.compile_module(net) if compile_model else net
    cfg = TrainConfig(task="at", attack="none" if method == "standard" else "fgsm", eps=EPS, alpha=EPS,
                      grad_align=LAM if method == "gradalign" else 0.0, bf16=fast)
    amp_ctx = speed.bf16_autocast(device) if fast else _Null
    if method == "sam":
        from ..torch.sam import SAM, sam_update

        opt = SAM(net.parameters(), torch.optim.SGD, rho=0.05, lr=0.01, momentum=0.9)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def step_fn(loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def one_epoch(limit=None):
        import torch.nn.functional as F

        n = len(y) if limit is None else min(len(y), limit)
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(2)).to(device)
        aug = torch.Generator().manual_seed(3)
        gen = torch.Generator().manual_seed(1)
        for xb, yb in speed.epoch_batches(x, y, perm, n // batch, batch, aug, on_device=fast, channels_last=fast):
            if method == "sam":
                sam_update(model, opt, F.cross_entropy, xb, yb, autocast_dtype=torch.bfloat16 if fast else None)
            else:
                at_step(cfg, model, net, xb, yb, gen, step_fn, amp_ctx)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return one_epoch


def _speed_row(ctx: BenchContext, method: str) -> dict:
    """float32 and fast epochs of ``method``, measured alternately in this run (:func:`interleaved_best`)."""
    import torch

    from ..torch import speed
    from ..torch.device import device_name, resolve_device

    dev = resolve_device("auto")
    cuda = dev.type == "cuda"
    n = (2_560 if ctx.quick else 10_240) if cuda else (16 if ctx.quick else 64)
    batch = min(BATCH, n)
    reps = ctx.repeats if cuda else 1
    x, y = random_images(n, dev)
    notes = []
    bench_before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cuda           # autotuned convolutions in both configurations
    try:
        compiled = cuda                               # cpu: compiling takes minutes and is not measured here
        fast = speed_epoch(method, x, y, dev, fast=True, compile_model=compiled, batch=batch)
        if compiled:
            try:
                fast(batch)
            except Exception as exc:  # noqa: BLE001 - fall back to eager, say so
                if not speed.is_compile_error(exc):
                    raise
                compiled = False
                notes.append(f"torch.compile failed ({type(exc).__name__}); fast configuration measured eager")
                fast = speed_epoch(method, x, y, dev, fast=True, batch=batch)
        base = speed_epoch(method, x, y, dev, fast=False, batch=batch)
        (t32, tfast), (w32, wfast) = interleaved_best([base, fast], reps, dev)
    finally:
        torch.backends.cudnn.benchmark = bench_before
    timed = (n // batch) * batch
    row = {"numpy_s": t32, "numba_s": tfast, "speedup": t32 / tfast, "compile_s": w32 + wfast,
           "method": method, "float32_epoch_s": t32, "fast_epoch_s": tfast,
           "float32_images_per_s": timed / t32, "fast_images_per_s": timed / tfast,
           "float32_epoch_50k_s": t32 * CIFAR_TRAIN / timed, "fast_epoch_50k_s": tfast * CIFAR_TRAIN / timed,
           "extrapolated": True, "timed_images": timed, "batch": batch,
           "fast": "bf16 + channels-last + data on device" + (" + compile" if compiled else ""),
           "compiled": compiled, "cudnn_benchmark": cuda, "torch_device": device_name(dev),
           "torch_threads": None if cuda else 1, "repeats": reps,
           "baseline": "numpy_s column = float32 epoch; numba_s column = fast-configuration epoch", "notes": notes}
    if method == "fgsm":
        row["fast_epoch_50k_goal_s"] = FGSM_EPOCH_GOAL_S
        row["fast_epoch_50k_met"] = None if (ctx.quick or not cuda) else bool(row["fast_epoch_50k_s"] <= FGSM_EPOCH_GOAL_S)
    return row


def _speed_workload(method: str, what: str):
    @workload(f"torch_speed_{method}_resnet18", target=None, needs=("torch",),
              description=f"{what} epoch of PreAct ResNet-18, images/s: float32 vs bf16 + channels-last + data on "
                          "device (+ compile on cuda), same run (cuda 10k images, cpu 64)")
    def fn(ctx: BenchContext) -> dict:
        return _speed_row(ctx, method)
    return fn


torch_speed_standard = _speed_workload("standard", "standard (clean)")
torch_speed_fgsm = _speed_workload("fgsm", "FGSM-AT")
torch_speed_gradalign = _speed_workload("gradalign", "FGSM-AT + GradAlign")
torch_speed_sam = _speed_workload("sam", "SAM")
