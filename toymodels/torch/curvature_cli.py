"""``python -m toymodels.torch curvature``: Hessian top eigenvalues, Hutchinson trace and spectral density
(stochastic Lanczos quadrature) of a checkpoint written by ``toymodels.torch.train`` (or of a freshly
initialized ``--model``), plain or rescaled (``--adaptive``: diag|w| H diag|w|, thesis Sec. 7.3), on the
mean cross-entropy over training points of its dataset; definitions in :mod:`toymodels.torch.curvature`.

The points are the first ``--n-points`` of the checkpoint's training set (drawn again with its own seed,
as ``sharpness``), evaluated in chunks of ``--batch-size`` (exact: the loss is the mean over all points).
BatchNorm uses its running statistics unless ``--bn train``. ``--per-layer`` adds λ_max (and the trace
with ``--trace``) of each layer's diagonal block of the Hessian. The fresh model's weights come from the
stream ``(seed, "global/torch")``; start and probe vectors from ``seed``.
"""
from __future__ import annotations

import time

import numpy as np

from .._cli import Choice, Command, Int, Num, Result
from .source_cli import add_source, first_points
from .train_cli import DEVICE, MAX_IMAGES

__all__ = ["COMMAND", "add_arguments"]

_POINTS = "training points held in memory"
_VECTORS = "Lanczos keeps this many vectors of the model's size"


def add_arguments(p) -> None:
    add_source(p)
    p.add_argument("--top-k", type=Int(0, 1000, "eigenvalues; each costs up to --max-iter products"), default=1,
                   help="how many top eigenvalues (default 1; 0: none)")
    p.add_argument("--method", type=Choice("power", "lanczos"), default="power",
                   help="power iteration with deflation (default; PyHessian) or Lanczos")
    p.add_argument("--tol", type=Num(0, 1, lo_open=True), default=1e-3,
                   help="relative tolerance of the eigenvalues in (0, 1] (default 1e-3, PyHessian's)")
    p.add_argument("--max-iter", type=Int(1, 10 ** 5, _VECTORS), default=100,
                   help="Hessian-vector products per eigenvalue (power) or in all (lanczos) (default 100)")
    p.add_argument("--trace", action="store_true", help="Hutchinson estimate of the trace, with its s.e.")
    p.add_argument("--n-samples", type=Int(2, 10 ** 6), default=100,
                   help="Hutchinson probe vectors (default 100)")
    p.add_argument("--density", action="store_true", help="spectral density by stochastic Lanczos quadrature")
    p.add_argument("--n-iter", type=Int(1, 10 ** 4, _VECTORS), default=100,
                   help="Lanczos steps per density run (default 100)")
    p.add_argument("--n-v", type=Int(1, 10 ** 4), default=1, help="density runs (default 1)")
    p.add_argument("--adaptive", action="store_true",
                   help="rescaled Hessian diag|w| H diag|w| (elementwise adaptive, c = |w|) instead of H")
    p.add_argument("--per-layer", action="store_true", help="also each layer's block of the Hessian")
    p.add_argument("--bn", type=Choice("eval", "train"), default="eval",
                   help="BatchNorm on running statistics (eval, default) or on batch statistics (train)")
    p.add_argument("--n-points", type=Int(1, MAX_IMAGES, _POINTS), default=256,
                   help="training points of the loss (default 256)")
    p.add_argument("--batch-size", type=Int(1, MAX_IMAGES, _POINTS), default=None,
                   help="chunk size of the forward/backward passes (memory only; default: all points at once)")
    p.add_argument("--device", type=DEVICE, default="auto", help="auto (cuda if available), cpu, cuda or cuda:K")


def _human(out: dict) -> None:
    c = out["config"]
    what = "rescaled Hessian diag|w| H diag|w|" if c["adaptive"] else "Hessian"
    print(f"{what} of the mean loss on {c['n_points']} points ({c['n_params']} parameters, BatchNorm {c['bn']}):")
    e = out["eigen"]
    if e is not None:
        for i, (lam, it, ok) in enumerate(zip(e["eigenvalues"], e["iterations"], e["converged"])):
            print(f"  lambda_{i + 1} = {lam:.6g}  ({it} iterations{'' if ok else ', NOT converged'})")
    t = out["trace"]
    if t is not None:
        print(f"  trace = {t['trace']:.6g} ± {t['se']:.3g} (s.e., {t['n_samples']} probes)")
    d = out["density"]
    if d is not None:
        nodes = np.concatenate([np.asarray(v) for v in d["nodes"]])
        print(f"  density: {len(d['nodes'])} SLQ runs, Ritz values in [{nodes.min():.4g}, {nodes.max():.4g}]")
    for row in out["per_layer"] or []:
        tr = f", trace {row['trace']:.4g} ± {row['trace_se']:.2g}" if row.get("trace") is not None else ""
        print(f"  layer {row['layer']} ({row['n_params']} params): lambda_max {row['lambda_max']:.4g}{tr}")
    print(f"{out['device_name']}; {out['n_products']} Hessian-vector products; {out['runtime_s']:.2f} s")


def _measure(a, model, batches, params, bar, top_k, with_trace, with_density):
    from . import curvature as cv

    common = dict(adaptive=a.adaptive, bn_mode=a.bn, seed=a.seed, progress_bar=bar)
    out = {"eigen": None, "trace": None, "density": None}
    if top_k:
        out["eigen"] = cv.top_eigenvalues(model, None, batches, params, k=top_k, method=a.method, tol=a.tol,
                                          max_iter=a.max_iter, **common).to_dict()
    if with_trace:
        out["trace"] = cv.trace(model, None, batches, params, n_samples=a.n_samples, **common).to_dict()
    if with_density:
        out["density"] = cv.density(model, None, batches, params, n_iter=a.n_iter, n_v=a.n_v, **common).to_dict()
    return out


def _per_layer(a, model, batches, bar) -> list:
    from .curvature import layer_groups

    rows = []
    for name, ps in layer_groups(model).items():
        m = _measure(a, model, batches, ps, bar, 1, a.trace, False)
        rows.append({"layer": name, "n_params": int(sum(p.numel() for p in ps)),
                     "lambda_max": m["eigen"]["eigenvalues"][0], "iterations": m["eigen"]["iterations"][0],
                     "converged": m["eigen"]["converged"][0],
                     "trace": m["trace"]["trace"] if m["trace"] else None,
                     "trace_se": m["trace"]["se"] if m["trace"] else None})
    return rows


class _Counter:
    """Counts the Hessian-vector products (a disabled tqdm bar does not count)."""

    def __init__(self, bar):
        self.bar, self.n = bar, 0

    def update(self, k: int = 1) -> None:
        self.n += k
        self.bar.update(k)


def run(a, session) -> Result:
    from .checkpoint import instantiate, model_source
    from .curvature import as_batches
    from .device import device_name, resolve_device, seed_everything

    device = resolve_device(a.device)
    src = model_source(a.checkpoint, a.model, a.dataset, a.data_dir, a.seed, device)
    x, y, num_classes = first_points(src, a.n_points, "n_points")
    if a.batch_size is not None and a.batch_size > a.n_points:
        a.batch_size = a.n_points
    seed_everything(a.seed)
    model = instantiate(src, num_classes, tuple(x.shape[1:])).to(device)
    dtype = next(model.parameters()).dtype
    batches = as_batches(x.to(device=device, dtype=dtype), y.to(device), a.batch_size)
    n_params = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    cfg = {"checkpoint": a.checkpoint, "model": src.name, "dataset": src.dataset, "data_dir": src.data_dir,
           "data_seed": src.data_seed, "n_points": a.n_points, "batch_size": a.batch_size or a.n_points,
           "top_k": a.top_k, "method": a.method, "tol": a.tol, "max_iter": a.max_iter, "trace": a.trace,
           "n_samples": a.n_samples, "density": a.density, "n_iter": a.n_iter, "n_v": a.n_v,
           "adaptive": a.adaptive, "per_layer": a.per_layer, "bn": a.bn, "seed": a.seed, "device": str(device),
           "dtype": str(dtype).replace("torch.", ""), "n_params": n_params, "loss": "cross-entropy (mean)"}
    t0 = time.perf_counter()
    with session.progress(None, desc="curvature", unit="HVP") as tq:
        bar = _Counter(tq)
        payload = _measure(a, model, batches, None, bar, a.top_k, a.trace, a.density)
        payload["per_layer"] = _per_layer(a, model, batches, bar) if a.per_layer else None
        n_products = bar.n
    payload.update(n_params=n_params, n_products=n_products, device_name=device_name(device),
                   runtime_s=time.perf_counter() - t0)
    out = {**payload, "config": cfg}
    files = {"density.png": lambda path: _plot(payload["density"], cfg, path)} if a.density else {}
    return Result(payload, cfg, human=lambda: _human(out), files=files)


def _plot(d: dict, c: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from .._io import save_figure
    from .curvature import density_on_grid

    grid, dens = density_on_grid(d["nodes"], d["weights"])
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    ax.semilogy(grid, np.maximum(dens, 1e-12), color="C0")
    ax.set_ylim(bottom=max(1e-8, float(dens.max()) * 1e-10))
    ax.set_xlabel("eigenvalue" + (" of diag|w| H diag|w|" if c["adaptive"] else " of H"))
    ax.set_ylabel("density (SLQ, Gaussian-smoothed)")
    ax.set_title(f"{c['model']} on {c['n_points']} {c['dataset']} points, {c['n_v']} runs × {c['n_iter']} steps")
    save_figure(fig, path)


COMMAND = Command("curvature", "Hessian eigenvalues, trace and spectral density of a checkpoint", add_arguments, run,
                  description=__doc__.split("\n\n")[0].replace("``", ""), needs=("torch",),
                  flags={"n_train": "--n-points", "n_test": "--n-points", "k": "--top-k", "batch_size": "--batch-size"},
                  epilog="Example: python -m toymodels.torch curvature --checkpoint runs/sgd/checkpoint.pt --top-k 3 "
                         "--trace --density --n-points 512 --batch-size 128 --json",
                  smoke=("--model", "cnn", "--device", "cpu", "--n-points", "8", "--max-iter", "3", "--trace",
                         "--n-samples", "3"))
