"""DLN ensemble throughput: :func:`toymodels.torch.dln.train_ensemble_torch` on the available torch
device (cuda if present, else cpu) vs the numba ensemble :func:`toymodels.dln.ensemble.train_ensemble`
(``_run_many``, prange over runs) on the CPU.

``torch_dln_ensemble_1sam``: R runs of full-batch 1-SAM in Fig. 5.13's setting (n = 20, d = 30,
k = 3, α = 0.01, γ = ρ = 1/d, one data set per run from seeds 0..R-1, n_test = 100), 1000 steps
(``--quick``: 100), losses recorded 10 times. R = 1024 when torch runs on the CPU and 32,768 on cuda
(``--quick``: 4096): a GPU step costs about the same for 1 or 10⁴ runs (kernel launches), so the GPU
is measured at the scale it is for; both backends run the same R. Both must end at the same w
(``max_rel_diff``, float64).

In this workload's row the table's ``numpy_s`` column is the numba ensemble (the baseline) and
``numba_s`` is torch, so ``speedup = numba_s(numba) / torch_s``, i.e. how many times faster torch on
``torch_device`` is than numba on ``numba_threads`` CPU threads; the explicit keys ``numba_ensemble_s``,
``torch_s``, ``torch_device``, ``torch_threads`` and ``throughput_*`` (run·steps/s) say the same
without the column names (``torch_loop_s``: torch's step loop alone, without the per-run Python set-up
that both backends pay). Both timings exclude one-time costs (numba compile / cache load, CUDA
context), reported as ``compile_s`` and ``torch_warmup_s``. torch runs on 1 CPU thread when the
device is the CPU (its intra-op pool spin-waits badly on a busy machine; the per-step tensors are
small). Without torch the workload is skipped (``skipped``: the reason) and has no numbers.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..datasets import make_sparse_regression
from ..dln.ensemble import train_ensemble
from ..dln.train import DLNConfig
from . import BenchContext, numba_threads, workload

RUNS = 1024
RUNS_CUDA = 32_768
N, D, K, N_TEST = 20, 30, 3, 100


def _problem(runs: int, steps: int):
    datas = [make_sparse_regression(N, D, K, n_test=N_TEST, seed=s) for s in range(runs)]
    base = DLNConfig(sam="1", algo="gd", alpha=0.01, lr=1.0 / D, rho=1.0 / D, steps=steps,
                     record_every=max(1, steps // 10))
    return datas, [replace(base, seed=s) for s in range(runs)]


@workload("torch_dln_ensemble_1sam", target=None, needs=("torch",),
          description="full-batch 1-SAM DLN runs (n=20, d=30; 1024 runs, cuda 32768), 10^3 steps: torch on "
                      "its device vs numba ensemble on CPU")
def torch_dln_ensemble(ctx: BenchContext) -> dict:
    import torch

    from ..torch.device import resolve_device
    from ..torch.dln import train_ensemble_torch

    steps = ctx.steps(1000)
    dev = resolve_device("auto")
    runs = RUNS if dev.type == "cpu" else (4096 if ctx.quick else RUNS_CUDA)
    datas, cfgs = _problem(runs, steps)
    threads = 1 if dev.type == "cpu" else None

    t = time.perf_counter()
    train_ensemble(datas[:2], [replace(c, steps=2, record_every=1) for c in cfgs[:2]])
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    train_ensemble_torch(datas[:2], [replace(c, steps=2, record_every=1) for c in cfgs[:2]], device=dev,
                         threads=threads)
    warm_s = time.perf_counter() - t

    best_nb, best_tr, res_nb, res_tr = np.inf, np.inf, None, None
    for _ in range(ctx.repeats):       # alternate, so that both see the same background load
        t = time.perf_counter()
        res_nb = train_ensemble(datas, cfgs)
        best_nb = min(best_nb, time.perf_counter() - t)
        t = time.perf_counter()
        res_tr = train_ensemble_torch(datas, cfgs, device=dev, threads=threads)
        best_tr = min(best_tr, time.perf_counter() - t)
    wp_nb = np.stack([r.w_plus for r in res_nb])
    diff = float(np.max(np.abs(res_tr.w_plus - wp_nb)) / np.max(np.abs(wp_nb)))
    work = runs * steps
    return {"numpy_s": best_nb, "numba_s": best_tr, "compile_s": compile_s, "torch_warmup_s": warm_s,
            "numba_ensemble_s": best_nb, "torch_s": best_tr, "torch_loop_s": res_tr.runtime_s, "speedup_torch_vs_numba": best_nb / best_tr,
            "torch_device": res_tr.device, "torch_threads": threads or torch.get_num_threads(),
            "numba_threads": numba_threads(), "throughput_numba": work / best_nb,
            "throughput_torch": work / best_tr, "runs": runs, "steps": steps, "n": N, "d": D,
            "sam": "1", "algo": "gd", "numpy_repeats": ctx.repeats, "max_rel_diff": diff,
            "baseline": "numpy_s column = numba train_ensemble (CPU); numba_s column = torch"}
