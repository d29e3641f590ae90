"""Speed options of the training loop (issue 16, "Speed on a GPU"): precision, memory format, batches
built on the device, ``torch.compile``.

The options (fields of :class:`toymodels.torch.config.TrainConfig`, flags of ``train-at`` /
``train-sam`` / ``train-sgd``) change how the training step is computed, not what: the objective, the
random streams and the batches are those of the default run.

* ``bf16`` (``--bf16``): the whole training step — attack, regularizer, training forward; all SAM
  passes — runs under ``torch.autocast(device_type, dtype=torch.bfloat16)`` on cuda and cpu, without a
  GradScaler (bfloat16 has float32's exponent range). The loss is computed from float32 logits; the
  weights, the optimizer and the evaluation stay float32. ``amp`` (``--amp``, unchanged) is float16 +
  GradScaler on cuda and bfloat16 autocast of the training forward only on the cpu (its attacks run in
  full precision); the two are exclusive. Results differ from float32 by rounding: bfloat16 keeps 8
  significant bits (relative rounding 2⁻⁹ ≈ 2e-3 per operation).
* ``channels_last`` (``--channels-last``): the model's parameters and every training batch in
  ``torch.channels_last`` (NHWC strides; the tensors' logical shape and values are unchanged). The
  convolutions then use NHWC kernels (tensor cores on cuda); sums run in another order, so results
  agree with the default layout to float32 rounding (~1e-6 relative per step), not bitwise. Exception:
  torch's *cpu* float32 BatchNorm in channels-last is less accurate (measured on PreAct ResNet-18,
  width 4: gradient error 2.7e-3 relative to float64, against 1.4e-6 in the default layout); the
  option is meant for cuda.
* ``data_on_device`` (``--data-on-device``): the training set is on the device in every run (the loop
  moves it there once); with this option each epoch's batches are also *built* there at once — the
  epoch's gather ``x[perm]`` and the crop/flip augmentation of all its images as one device gather,
  with the crop offsets and flips of all its batches drawn up front from the same CPU stream
  ``(seed, "augment", epoch)`` in the same order (batch by batch: dy, dx, flips) and copied once.
  The batches are bitwise those of the default path (:func:`epoch_batches`); the per-step host work
  and host-to-device copies go away, at the cost of a second copy of the epoch's images on the device
  (for CIFAR-10 in float32: 614 MB; the augmentation runs in chunks of :data:`CHUNK` images).
* ``compile`` (``--compile``): ``torch.compile`` of the module the training loss goes through (the
  training forward and its first-order backward; every SAM pass); the attacks, the regularizers'
  double backprop (not supported by ``torch.compile``'s autograd) and the evaluation use the eager
  module, which shares the parameters. The first steps compile (a minute on a CPU); on the CPU inductor
  needs a C++ compiler. A compilation failure is raised as :class:`~toymodels.errors.RunError` (one
  line at the command line, exit status 1) by :func:`compile_failure`.
"""
from __future__ import annotations

import contextlib

import torch

from ..errors import RunError
from .augment import PADDING, crop_flip, draw_crop_flip, random_crop_flip

__all__ = ["CHUNK", "COMPILE_BACKEND", "bf16_autocast", "step_autocast", "prepare_model", "compile_module",
           "is_compile_error", "compile_failure", "epoch_batches"]

#: images augmented per device gather by :func:`epoch_batches` (bounds its index tensors' memory)
CHUNK = 8192
#: the ``torch.compile`` backend of :func:`compile_module` (tests may swap it)
COMPILE_BACKEND = "inductor"


def bf16_autocast(device: torch.device):
    """A factory of ``torch.autocast(device.type, dtype=torch.bfloat16)`` contexts (a new one per call)."""
    dev = torch.device(device).type
    return lambda: torch.autocast(dev, dtype=torch.bfloat16)


def step_autocast(bf16: bool, amp_ctx):
    """The context factory that the attack and the regularizer of a training step run under:
    ``amp_ctx`` (the training forward's) with ``bf16``, else no autocast (full precision)."""
    return amp_ctx if bf16 else contextlib.nullcontext


def prepare_model(net: torch.nn.Module, *, channels_last: bool = False) -> torch.nn.Module:
    """``net`` with its parameters and buffers in ``torch.channels_last`` when asked (in place; 4-d
    tensors only, the others are unchanged); returns ``net``."""
    if channels_last:
        net.to(memory_format=torch.channels_last)
    return net


def compile_module(module: torch.nn.Module, backend=None) -> torch.nn.Module:
    """``torch.compile(module)`` with :data:`COMPILE_BACKEND` (or ``backend``); it shares the parameters
    of ``module`` (the state dict of ``module`` is unchanged). Compilation happens at the first call."""
    return torch.compile(module, backend=backend or COMPILE_BACKEND)


def is_compile_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from ``torch.compile`` (dynamo, aot-autograd, inductor or its C++ compiler)."""
    for t in type(exc).__mro__:
        if t.__module__.startswith(("torch._dynamo", "torch._inductor", "torch._functorch")):
            return True
    text = str(exc)
    return "torch.compile" in text or "aot_autograd" in text or "inductor" in text.lower()


def compile_failure(exc: BaseException, device) -> RunError:
    """The one-line :class:`RunError` that reports a failed ``torch.compile`` (see :func:`is_compile_error`)."""
    root, seen = exc, {id(exc)}
    while True:           # the innermost cause (dynamo wraps the backend's error: "backend='x' raised: ...")
        nxt = getattr(root, "inner_exception", None) or root.__cause__
        if nxt is None or id(nxt) in seen:
            break
        root = nxt
        seen.add(id(root))
    first = (str(root).strip().splitlines() or [""])[0][:200]
    if root is not exc:
        first = f"{type(root).__name__}: {first}"
    hint = " (on the cpu inductor needs a working C++ compiler, e.g. g++)" if torch.device(device).type == "cpu" else ""
    return RunError(f"compile: torch.compile failed on {torch.device(device).type}{hint}: {type(exc).__name__}: "
                    f"{first}; run without --compile")


def _to_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def epoch_batches(x: torch.Tensor, y: torch.Tensor, perm: torch.Tensor, steps: int, batch: int,
                  augment: torch.Generator | None = None, *, on_device: bool = False, channels_last: bool = False):
    """The training batches ``(x_b, y_b)`` of one epoch, b = 0 … ``steps`` − 1.

    Parameters
    ----------
    x, y : the training images (N, C, H, W) and labels, on the device.
    perm : this process's order of the training positions for the epoch (on the device); batch b holds
        the positions ``perm[b·batch : (b+1)·batch]``.
    steps, batch : batches per epoch and images per batch (``steps · batch <= len(perm)``).
    augment : the CPU generator of the epoch's crop/flip augmentation (``None``: no augmentation); batch
        b is ``random_crop_flip(x[idx_b], augment)`` (:mod:`toymodels.torch.augment`), drawn batch by batch.
    on_device : build all the epoch's batches up front (one gather of ``x[perm]``, the draws of every
        batch made in the same order and copied once, the crop/flip as device gathers of :data:`CHUNK`
        images), then yield slices of them. The yielded tensors are bitwise equal to the default path's.
    channels_last : yield the images in ``torch.channels_last`` (same values).

    Yields
    ------
    (x_b, y_b) : images (batch, C, H, W) and labels (batch,).
    """
    if not on_device:
        for b in range(steps):
            idx = perm[b * batch:(b + 1) * batch]
            xb = x[idx] if augment is None else random_crop_flip(x[idx], augment)
            yield _to_format(xb, channels_last), y[idx]
        return
    idx = perm[:steps * batch]
    xe, ye = x[idx], y[idx]
    if augment is not None:
        draws = [draw_crop_flip(batch, augment) for _ in range(steps)]
        dy, dx, fl = (torch.cat([d[k] for d in draws]).to(x.device) for k in range(3))
        xe = torch.cat([crop_flip(xe[i:i + CHUNK], dy[i:i + CHUNK], dx[i:i + CHUNK], fl[i:i + CHUNK], PADDING)
                        for i in range(0, len(ye), CHUNK)]) if len(ye) else xe
    xe = _to_format(xe, channels_last)
    for b in range(steps):
        yield xe[b * batch:(b + 1) * batch], ye[b * batch:(b + 1) * batch]
