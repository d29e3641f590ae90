"""``python -m toymodels.torch sharpness``: adaptive average / worst-case m-sharpness (thesis Ch. 7) of a
checkpoint written by ``toymodels.torch.train`` (or of a freshly initialized ``--model``), on training
points of its dataset; definitions in :mod:`toymodels.torch.sharpness`.

Thesis protocol (l.4121): 2048 training points in 8 batches (``--n-examples 2048 --m 256``), Auto-PGD
with 20 steps for the worst case, 100 weight perturbations per batch for the average case.

The fresh model's weights come from the stream ``(seed, "global/torch")`` of :mod:`toymodels.rng`; the
perturbations from ``seed`` (see :func:`toymodels.torch.sharpness.sharpness`); a checkpoint's training
set is drawn again with the checkpoint's own seed. A non-finite loss is reported as a result
(``diverged``), not an error.
"""
from __future__ import annotations

import time

import numpy as np

from .._cli import Choice, Command, Int, Num, Result
from ..errors import ConfigError
from .config import KINDS
from .source_cli import add_source, first_points
from .train_cli import DEVICE, MAX_IMAGES

__all__ = ["COMMAND", "add_arguments"]

_POINTS = "training points held in memory"


def add_arguments(p) -> None:
    add_source(p)
    p.add_argument("--rho", type=Num(0, lo_open=True), default=0.01, help="radius ρ > 0 (default 0.01)")
    p.add_argument("--kind", type=Choice(*KINDS), default="worst-linf", help="default: worst-linf")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--adaptive", dest="adaptive", action="store_true", default=True,
                   help="elementwise adaptive sharpness, c = |w| (default)")
    g.add_argument("--standard", dest="adaptive", action="store_false", help="standard sharpness, c = 1")
    p.add_argument("--m", type=Int(1, MAX_IMAGES, _POINTS), default=None,
                   help="m-sharpness batch size in [1, --n-examples] (default: --n-examples, one batch)")
    p.add_argument("--logit-norm", action="store_true", help="normalize the logits (thesis eq. 7.5)")
    p.add_argument("--n-examples", type=Int(1, MAX_IMAGES, _POINTS), default=256,
                   help="training points used (default 256)")
    p.add_argument("--n-samples", type=Int(2, 10 ** 6), default=100,
                   help="average case: perturbations per batch (default 100)")
    p.add_argument("--n-iter", type=Int(1, 10 ** 5), default=20, help="worst case: Auto-PGD iterations (default 20)")
    p.add_argument("--restarts", type=Int(1, 10 ** 3), default=1,
                   help="worst case: Auto-PGD random restarts (default 1)")
    p.add_argument("--noise", type=Choice("numpy", "torch"), default="numpy",
                   help="average case: draw γ with numpy (default; identical to the numpy twin "
                        "toymodels.sharpness) or torch (on the device, faster for large models on GPU)")
    p.add_argument("--max-batch", type=Int(1, MAX_IMAGES, _POINTS), default=None,
                   help="evaluate each batch in chunks of at most this many points (memory only; same value)")
    p.add_argument("--device", type=DEVICE, default="auto", help="auto (cuda if available), cpu, cuda or cuda:K")


def _human(out: dict) -> None:
    c = out["config"]
    if out["diverged"]:
        print(f"{c['kind']} sharpness (rho={c['rho']}): non-finite loss ({out['diverged_at']})")
        return
    se = f" ± {out['se']:.3g} (s.e.)" if out["se"] is not None else ""
    print(f"{c['kind']} {'adaptive' if c['adaptive'] else 'standard'} sharpness (rho={c['rho']}, m={c['m']}, "
          f"{out['n_batches']} batches{', logit-normalized' if c['logit_norm'] else ''}): {out['sharpness']:.6g}{se}")
    print(f"base loss {np.mean(out['base_loss']):.6g}; {out['device_name']}; {out['runtime_s']:.2f} s")


def run(a, session) -> Result:
    if a.m is not None and a.m > a.n_examples:
        raise ConfigError("m", f"must be <= --n-examples = {a.n_examples}", a.m)
    from .checkpoint import instantiate, model_source
    from .device import device_name, resolve_device, seed_everything
    from .sharpness import sharpness

    device = resolve_device(a.device)
    src = model_source(a.checkpoint, a.model, a.dataset, a.data_dir, a.seed, device)
    x, y, num_classes = first_points(src, a.n_examples, "n_examples")
    seed_everything(a.seed)
    model = instantiate(src, num_classes, tuple(x.shape[1:])).to(device)
    dtype = next(model.parameters()).dtype
    x, y = x.to(device=device, dtype=dtype), y.to(device)
    m = a.m or a.n_examples
    cfg = {"checkpoint": a.checkpoint, "model": src.name, "dataset": src.dataset, "data_dir": src.data_dir,
           "rho": a.rho, "kind": a.kind, "adaptive": a.adaptive, "m": m, "logit_norm": a.logit_norm,
           "n_examples": a.n_examples, "n_samples": a.n_samples, "n_iter": a.n_iter, "restarts": a.restarts,
           "noise": a.noise, "max_batch": a.max_batch, "seed": a.seed, "data_seed": src.data_seed,
           "device": str(device), "dtype": str(dtype).replace("torch.", ""),
           "n_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad))}
    t0 = time.perf_counter()
    with session.progress(a.n_examples // m, desc=f"sharpness {a.kind}", unit="batch") as bar:
        try:
            res = sharpness(model, x, y, a.rho, kind=a.kind, m=m, adaptive=a.adaptive, logit_norm=a.logit_norm,
                            seed=a.seed, n_samples=a.n_samples, n_iter=a.n_iter, n_restarts=a.restarts,
                            max_batch=a.max_batch, noise=a.noise, progress_bar=bar)
            payload = {**res.to_dict(), "diverged": False, "diverged_at": None}
        except FloatingPointError as exc:
            session.note(f"{exc}; try a smaller --rho")
            payload = {"kind": a.kind, "sharpness": None, "se": None, "diverged": True, "diverged_at": str(exc)}
    payload.update(device_name=device_name(device), runtime_s=time.perf_counter() - t0)
    out = {**payload, "config": cfg}
    return Result(payload, cfg, human=lambda: _human(out))


COMMAND = Command("sharpness", "adaptive average / worst-case m-sharpness of a checkpoint", add_arguments, run,
                  description=__doc__.split("\n\n")[0].replace("``", ""), needs=("torch",),
                  flags={"n_train": "--n-examples", "n_test": "--n-examples"},
                  epilog="Example: python -m toymodels.torch sharpness --model cnn --rho 0.01 --kind worst-linf --json",
                  smoke=("--model", "cnn", "--device", "cpu", "--n-examples", "8", "--m", "4", "--n-iter", "2"))
