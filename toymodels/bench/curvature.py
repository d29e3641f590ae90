"""Curvature benchmarks (issue 15 item 4): Hessian-vector products and the top Hessian eigenvalue of
:mod:`toymodels.torch.curvature` timed against PyHessian 0.1 (Yao et al. 2020, the tool the field uses)
on the same model, batch and number of products, in the same run.

The problem (deterministic): PreAct ResNet-18 (float32, 10 classes, eval mode: BatchNorm on running
statistics, as PyHessian forces), freshly initialized from the stream ``(0, "bench/curvature")``, on the
first n = 32 ``synthetic`` 32×32 training images (``--quick``: 8 images), mean cross-entropy, on the
torch device (cuda if present, else cpu with 1 torch thread, as the other torch benches).

==============================  ===============================================  ==============================================
workload                        ours                                             PyHessian
==============================  ===============================================  ==============================================
``torch_curvature_hvp``         a ``HessianOperator`` and R products             ``hessian(data=...)`` and R
                                (R = 10; ``--quick``: 2)                          ``hessian_vector_product`` calls
``torch_curvature_top_eig``     ``top_eigenvalues(k=1, method="power")``         ``hessian.eigenvalues(top_n=1)``
                                with T = 20 iterations (``--quick``: 3)          with ``maxIter`` = T
==============================  ===============================================  ==============================================

Both sides build the gradient graph once (double backprop with a retained graph) and then make one
backward pass per product; the tolerance is set below reach (1e-30) so that both make exactly T products.
The table's ``numpy_s`` column is PyHessian's time, ``numba_s`` ours, so ``speedup`` = PyHessian / ours
(> 1: ours faster; the issue's goal is ≥ 1, reported, never asserted). ``lambda_ours`` /
``lambda_pyhessian`` are the eigenvalues each reached (different random start vectors). One timed repeat
each after a warm-up on 2 images. Without torch the workloads are skipped; without PyHessian they report
our time and are marked skipped (baseline not applicable).
"""
from __future__ import annotations

import functools
import importlib.util
import time

from . import BenchContext, workload

N_FULL, N_QUICK = 32, 8
NEEDS = ("torch",)
_NO_PYHESSIAN = "PyHessian baseline not installed (pip install --no-deps pyhessian==0.1)"


@functools.lru_cache(maxsize=None)
def _problem(device_str: str):
    """(model in eval mode, x, y) on ``device_str`` (see the module docstring)."""
    import torch

    from ..torch.data import load
    from ..torch.device import seed_everything
    from ..torch.models import build_model

    x, y, _, _, K = load("synthetic", None, N_FULL, 1, 0)
    seed_everything(0, "bench/curvature")
    model = build_model("preact-resnet18", K, x.shape[1], x.shape[2])
    dev = torch.device(device_str)
    return model.eval().to(dev), x.to(dev), y.to(dev)


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _ours_hvp(model, x, y, reps):
    import torch

    from ..torch import curvature as cv

    with cv.model_state(model):
        op = cv.HessianOperator(model, None, (x, y))
        v = torch.ones(op.dim, device=op.device, dtype=op.dtype)
        for _ in range(reps):
            v = op.matvec(v)
        op.release()
    return float(torch.linalg.vector_norm(v))


def _theirs_hvp(model, x, y, reps):
    import torch
    from pyhessian import hessian
    from pyhessian.utils import hessian_vector_product

    hc = hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=x.device.type == "cuda")
    v = [torch.ones_like(p) for p in hc.params]
    for _ in range(reps):
        v = list(hessian_vector_product(hc.gradsH, hc.params, v))
    _clear(model)
    return float(torch.sqrt(sum((t * t).sum() for t in v)))


def _ours_eig(model, x, y, iters):
    from ..torch.curvature import top_eigenvalues

    return top_eigenvalues(model, None, (x, y), k=1, method="power", tol=1e-30, max_iter=iters).eigenvalues[0]


def _theirs_eig(model, x, y, iters):
    import torch
    from pyhessian import hessian

    torch.manual_seed(0)
    hc = hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=x.device.type == "cuda")
    lam = hc.eigenvalues(maxIter=iters, tol=1e-30, top_n=1)[0][0]
    _clear(model)
    return float(lam)


def _clear(model) -> None:
    """PyHessian leaves graph-carrying ``.grad`` fields (a reference cycle): drop them."""
    for p in model.parameters():
        p.grad = None


def _pair(ctx: BenchContext, kind: str) -> dict:
    import torch

    from ..torch.device import device_name, resolve_device

    dev = resolve_device("auto")
    prev = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)         # torch's pool spin-waits on a busy machine (as the other benches)
    have_theirs = importlib.util.find_spec("pyhessian") is not None
    reps = (2 if ctx.quick else 10) if kind == "hvp" else (3 if ctx.quick else 20)
    ours, theirs = (_ours_hvp, _theirs_hvp) if kind == "hvp" else (_ours_eig, _theirs_eig)
    try:
        model, x, y = _problem(str(dev))
        n = N_QUICK if ctx.quick else N_FULL
        x, y = x[:n], y[:n]
        rows = {}
        for label, fn in (("ours", ours), ("pyhessian", theirs)):
            if label == "pyhessian" and not have_theirs:
                continue
            t = time.perf_counter()
            fn(model, x[:2], y[:2], 1)
            _sync(dev)
            warm = time.perf_counter() - t
            t = time.perf_counter()
            value = fn(model, x, y, reps)
            _sync(dev)
            rows[label] = (time.perf_counter() - t, warm, value)
    finally:
        torch.set_num_threads(prev)
    what = "hvp_norm" if kind == "hvp" else "lambda"
    out = {"ours_s": rows["ours"][0], "n_images": n, "products": reps, f"{what}_ours": rows["ours"][2],
           "torch_device": device_name(dev), "torch_threads": 1 if dev.type == "cpu" else None,
           "model": "preact-resnet18", "n_params": int(sum(p.numel() for p in model.parameters()))}
    if not have_theirs:
        return {"skipped": _NO_PYHESSIAN, **out}
    return {**out, "numpy_s": rows["pyhessian"][0], "numba_s": rows["ours"][0],
            "compile_s": rows["ours"][1] + rows["pyhessian"][1], "pyhessian_s": rows["pyhessian"][0],
            f"{what}_pyhessian": rows["pyhessian"][2],
            "baseline": "numpy_s column = PyHessian 0.1; numba_s column = toymodels.torch.curvature"}


@workload("torch_curvature_hvp", target=None, needs=NEEDS,
          description="Hessian-vector products (graph + 10 products) vs PyHessian, PreAct ResNet-18 on 32 images")
def bench_hvp(ctx: BenchContext) -> dict:
    return _pair(ctx, "hvp")


@workload("torch_curvature_top_eig", target=None, needs=NEEDS,
          description="top Hessian eigenvalue (20 power iterations) vs PyHessian, PreAct ResNet-18 on 32 images")
def bench_top_eig(ctx: BenchContext) -> dict:
    return _pair(ctx, "eig")
