"""Torch benchmarks of issue 14: the epoch cost of each catastrophic-overfitting (CO) method relative to
FGSM AT, measured in the same run on the torch device (cuda if present, else cpu, 1 thread).

One "epoch" = one pass of :func:`toymodels.torch.train.at_step` (attack, regularizer, SGD step; model
in train mode) over ``images`` uniform-random 32×32×3 images with random labels, batch 128, ε = 8/255,
float32, after one warm-up batch; each method's λ is its default at 8/255
(:func:`toymodels.torch.config.default_reg_lambda`; the cost does not depend on it). The methods'
epochs alternate within each repeat (best of the repeats), so all see the same background load:

    fgsm, fgsm-rs (α = 1.25ε), n-fgsm (k = 2, α = ε), pgd-2 (α = ε/2), gradalign (exact, double
    backprop), gradalign-fd (central FD, h = 1e-3), gradalign-fd-fwd (forward FD), elle (+ FGSM),
    elle-clean (ELLE on the clean loss, no attack), elle-a (ELLE-A from λ = 0: an
    epoch of mostly-off penalty), gradnorm / cure (exact), and gradnorm-fd / cure-fd
    (central FD, h = 1e-3); every other regularizer on top of FGSM.

* ``torch_co_methods_cnn`` — the single-layer CNN (4 filters), 4,000 images (``--quick``: 512).
* ``torch_co_methods_resnet18`` — PreAct ResNet-18; cuda: 5,000 images; cpu: 128 (``--quick``: cuda
  512, cpu 16).

``ratios`` maps each method to its epoch time / the FGSM epoch time (``epoch_s``: the times); the table's
``numpy_s`` = ``numba_s`` = the FGSM epoch (speedup 1), the ratios are printed below it (``notes``).
"""
from __future__ import annotations

from . import BenchContext, workload

BATCH = 128
EPS = 8 / 255
H = 1e-3
#: method name → TrainConfig fields (task "at", ε = 8/255)
METHODS = {
    "fgsm": dict(attack="fgsm"),
    "fgsm-rs": dict(attack="fgsm-rs", alpha=1.25 * EPS),
    "n-fgsm": dict(attack="n-fgsm"),
    "pgd-2": dict(attack="pgd", alpha=EPS / 2, pgd_steps=2),
    "gradalign": dict(attack="fgsm", reg="gradalign"),
    "gradalign-fd": dict(attack="fgsm", reg="gradalign-fd", reg_h=H),
    "gradalign-fd-fwd": dict(attack="fgsm", reg="gradalign-fd", reg_h=H, reg_scheme="forward"),
    "elle": dict(attack="fgsm", reg="elle"),
    "elle-clean": dict(attack="none", reg="elle"),
    "elle-a": dict(attack="fgsm", reg="elle-a"),
    "gradnorm": dict(attack="fgsm", reg="gradnorm"),
    "gradnorm-fd": dict(attack="fgsm", reg="gradnorm", reg_h=H),
    "cure": dict(attack="fgsm", reg="cure"),
    "cure-fd": dict(attack="fgsm", reg="cure", reg_h=H),
}


def _epochs(model_name: str, n: int, repeats: int, device) -> tuple[dict, float]:
    """({method: best epoch seconds}, total warm-up seconds) over n images."""
    from ..torch.train import TrainConfig
    from .torch_train import at_epoch, interleaved_best, random_images

    x, y = random_images(n, device)

    def make_epoch(fields):
        return at_epoch(model_name, TrainConfig(task="at", eps=EPS, **fields), x, y, device, lr=1e-4)

    best, warm = interleaved_best([make_epoch(f) for f in METHODS.values()], repeats, device)
    return dict(zip(METHODS, best)), sum(warm)


def _co_methods(ctx: BenchContext, model_name: str, n_cpu: int, n_cuda: int, quick_cpu: int, quick_cuda: int) -> dict:
    from ..torch.device import device_name, resolve_device

    dev = resolve_device("auto")
    cuda = dev.type == "cuda"
    n = (quick_cuda if cuda else quick_cpu) if ctx.quick else (n_cuda if cuda else n_cpu)
    reps = ctx.repeats if (model_name == "cnn" or cuda) else 1
    best, warm = _epochs(model_name, n, reps, dev)
    base = best["fgsm"]
    ratios = {k: v / base for k, v in best.items()}
    notes = [f"{model_name} on {device_name(dev)}, {n} images: epoch time / FGSM epoch: "
             + ", ".join(f"{k} {r:.2f}x" for k, r in ratios.items())]
    return {"numpy_s": base, "numba_s": base, "speedup": 1.0, "compile_s": warm, "ratios": ratios,
            "epoch_s": best, "images": n, "batch": BATCH, "model": model_name, "eps": EPS, "fd_h": H,
            "torch_device": device_name(dev), "torch_threads": None if cuda else 1, "repeats": reps,
            "baseline": "numpy_s = numba_s = the FGSM epoch; ratios: each method's epoch / FGSM's", "notes": notes}


@workload("torch_co_methods_cnn", target=None, needs=("torch",),
          description="epoch time of each CO method / FGSM AT, single-layer CNN (4k images)")
def torch_co_methods_cnn(ctx: BenchContext) -> dict:
    return _co_methods(ctx, "cnn", 4_000, 4_000, 512, 512)


@workload("torch_co_methods_resnet18", target=None, needs=("torch",),
          description="epoch time of each CO method / FGSM AT, PreAct ResNet-18 (cpu 128 / cuda 5k images)")
def torch_co_methods_resnet(ctx: BenchContext) -> dict:
    return _co_methods(ctx, "preact-resnet18", 128, 5_000, 16, 512)
