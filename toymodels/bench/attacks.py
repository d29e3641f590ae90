"""Attack benchmarks (issue 13): each attack of :mod:`toymodels.torch` timed against the implementation
the field uses, ``torchattacks`` 3.5.1, on the same model, points and budget.

The problem (deterministic): the single-layer CNN (8 filters, float32) trained with Adam for 6 epochs on
2,000 ``photos`` images (seed 0; ≈ 0.67 clean accuracy), attacked on its first ``n`` test points at
ℓ∞ ε = 8/255 on the torch device (cuda if present, else cpu with 1 torch thread):

==============================  ================================================  ====================================
workload                        ours                                              torchattacks
==============================  ================================================  ====================================
``torch_attack_apgd_ce``        ``APGD(loss="ce", steps=100)``                    ``APGD(steps=100, loss="ce")``
``torch_attack_apgd_t``         ``APGDT(steps=100, n_target_classes=K−1)``        ``APGDT(steps=100, n_classes=K)``
``torch_attack_fab_t``          ``FAB(steps=100, targeted, n_target_classes=K−1)``  ``FAB(steps=100, multi_targeted=True)``
``torch_attack_square``         ``Square(n_queries=5001, p_init=0.8)``            ``Square(n_queries=5000)``
``torch_attack_cascade``        ``evaluate(version="standard")``                  ``MultiAttack`` of the four above
==============================  ================================================  ====================================

(torchattacks' ``Square(n_queries=Q)`` makes Q proposals after its initialization: Q + 1 queries in our
count.) n = 200 points (``--quick``: 50 points, 10 iterations, 500 queries). The table's ``numpy_s`` column
is the torchattacks time, ``numba_s`` ours, so ``speedup`` = torchattacks / ours (> 1: ours faster);
``robust_ours`` / ``robust_torchattacks`` are the robust accuracies each reached (a speed-up bought with a
weaker attack would show there). One timed repeat each after a warm-up call on 2 points (first-call
costs: ``compile_s``). Without torch or torchattacks the workloads are skipped.
"""
from __future__ import annotations

import functools
import time

from . import BenchContext, workload

EPS = 8 / 255
N_FULL, N_QUICK = 200, 50
NEEDS = ("torch", "torchattacks")


@functools.lru_cache(maxsize=None)
def _problem(device_str: str):
    """(model in eval mode, x_test, y_test, K) on ``device_str`` (see the module docstring)."""
    import torch
    import torch.nn.functional as F

    from ..torch.data import load
    from ..torch.device import seed_everything
    from ..torch.models import build_model

    xtr, ytr, xte, yte, K = load("photos", None, 2000, N_FULL, 0)
    seed_everything(0, "bench/attacks")
    model = build_model("cnn", K, xtr.shape[1], xtr.shape[2], filters=8)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        for idx in torch.randperm(len(ytr), generator=g).split(100):
            opt.zero_grad()
            F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
    dev = torch.device(device_str)
    return model.eval().to(dev), xte.to(dev), yte.to(dev), K


def _pair(ctx: BenchContext, kind: str) -> dict:
    """Time ours and torchattacks' attack ``kind`` on the same points and budget."""
    import torch

    from ..torch.device import device_name, resolve_device

    dev = resolve_device("auto")
    prev = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)         # torch's pool spin-waits on a busy machine (as the other benches)
    try:
        model, x, y, K = _problem(str(dev))
        n = N_QUICK if ctx.quick else N_FULL
        steps, queries = (10, 500) if ctx.quick else (100, 5000)
        ours, theirs = _attacks(kind, model, K, steps, queries)
        x, y = x[:n], y[:n]
        rows = {}
        for label, atk in (("ours", ours), ("torchattacks", theirs)):
            t = time.perf_counter()
            atk(x[:2], y[:2])
            warm = time.perf_counter() - t
            t = time.perf_counter()
            x_adv = atk(x, y)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            rows[label] = (time.perf_counter() - t, warm, _robust(model, x_adv, y))
    finally:
        torch.set_num_threads(prev)
    return {"numpy_s": rows["torchattacks"][0], "numba_s": rows["ours"][0],
            "compile_s": rows["ours"][1] + rows["torchattacks"][1], "ours_s": rows["ours"][0],
            "torchattacks_s": rows["torchattacks"][0], "robust_ours": rows["ours"][2],
            "robust_torchattacks": rows["torchattacks"][2], "n_points": n, "steps": steps, "queries": queries,
            "eps": EPS, "torch_device": device_name(dev), "torch_threads": 1 if dev.type == "cpu" else None,
            "baseline": "numpy_s column = torchattacks 3.5.1; numba_s column = toymodels.torch"}


def _robust(model, x_adv, y) -> float:
    import torch

    with torch.no_grad():
        return float((model(x_adv).argmax(1) == y).float().mean())


def _attacks(kind: str, model, K: int, steps: int, queries: int):
    """(ours, torchattacks') callables x, y -> x_adv for ``kind``."""
    import torchattacks as ta

    from ..torch import attack_objects as ao
    from ..torch.evaluate import evaluate

    common = dict(norm="linf", eps=EPS, seed=0)
    pairs = {
        "apgd-ce": (lambda: ao.APGD(model, steps=steps, loss="ce", **common),
                    lambda: ta.APGD(model, norm="Linf", eps=EPS, steps=steps, loss="ce", seed=0)),
        "apgd-t": (lambda: ao.APGDT(model, steps=steps, n_target_classes=K - 1, **common),
                   lambda: ta.APGDT(model, norm="Linf", eps=EPS, steps=steps, n_classes=K, seed=0)),
        "fab-t": (lambda: ao.FAB(model, steps=steps, targeted=True, n_target_classes=K - 1, **common),
                  lambda: ta.FAB(model, norm="Linf", eps=EPS, steps=steps, multi_targeted=True, n_classes=K, seed=0)),
        "square": (lambda: ao.Square(model, n_queries=queries + 1, p_init=0.8, **common),
                   lambda: ta.Square(model, norm="Linf", eps=EPS, n_queries=queries, p_init=0.8, seed=0)),
    }
    if kind != "cascade":
        ours, theirs = pairs[kind]
        return ours(), theirs()

    def cascade(x, y):
        return evaluate(model, x, y, version="standard", steps=steps, n_queries=queries + 1, **common).x_adv

    return cascade, ta.MultiAttack([pairs[k][1]() for k in ("apgd-ce", "apgd-t", "fab-t", "square")])


@workload("torch_attack_apgd_ce", target=None, needs=NEEDS,
          description="APGD-CE (100 steps, ℓ∞ 8/255) vs torchattacks.APGD, CNN on 200 photos points")
def bench_apgd_ce(ctx: BenchContext) -> dict:
    return _pair(ctx, "apgd-ce")


@workload("torch_attack_apgd_t", target=None, needs=NEEDS,
          description="APGD-T (K−1 targets × 100 steps) vs torchattacks.APGDT, CNN on 200 photos points")
def bench_apgd_t(ctx: BenchContext) -> dict:
    return _pair(ctx, "apgd-t")


@workload("torch_attack_fab_t", target=None, needs=NEEDS,
          description="FAB-T (K−1 targets × 100 steps) vs torchattacks.FAB(multi_targeted), CNN on 200 points")
def bench_fab_t(ctx: BenchContext) -> dict:
    return _pair(ctx, "fab-t")


@workload("torch_attack_square", target=None, needs=NEEDS,
          description="Square (5000 queries, p_init 0.8) vs torchattacks.Square, CNN on 200 photos points")
def bench_square(ctx: BenchContext) -> dict:
    return _pair(ctx, "square")


@workload("torch_attack_cascade", target=None, needs=NEEDS,
          description="standard AutoAttack cascade vs torchattacks.MultiAttack (same budgets), CNN on 200 points")
def bench_cascade(ctx: BenchContext) -> dict:
    return _pair(ctx, "cascade")
