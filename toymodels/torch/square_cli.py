"""``python -m toymodels.torch square``: Square Attack (thesis Ch. 3) on a checkpoint of
:mod:`toymodels.torch.train` (or a freshly initialised model), on the correctly classified test points.

Output keys mirror ``python -m toymodels.square attack``: ``failure_rate`` (over the attacked, i.e.
correctly classified, points), ``mean_queries`` / ``median_queries`` (over successes), ``clean_acc``,
``square_robust_acc`` = clean_acc × failure_rate, ``pgd_robust_acc`` (white-box PGD on the same test
points in the attack's norm: ℓ∞ :func:`toymodels.torch.attacks.pgd_eval`, ℓ₂ :func:`toymodels.torch.pgd.pgd`
with ``norm="l2"``, α = ε/4), ``max_perturbation_norm`` (in the attack's norm), plus ``config`` and
``version``. Square defaults by image size (:mod:`toymodels.square.options`): 5,000 queries and p = 0.8
for images of side ≤ 64 (AutoAttack), else 1,000 and 0.05 (ℓ∞) / 0.1 (ℓ₂).

Random streams: the attack draws from ``toymodels.rng.stream(seed)`` (the numpy twin's stream), the ℓ∞
PGD starts from ``(seed, "pgd")``, the ℓ₂ PGD's restart r from ``(seed, "pgd", r)``, a fresh model's
weights from ``(seed, "global/torch")``; a checkpoint's test set is drawn again with the checkpoint's own seed.
"""
from __future__ import annotations

import time

import numpy as np

from .._cli import Choice, Command, InDir, InFile, Int, Num, Result
from ..datasets import IMAGE_DATASETS
from ..square.search_cli import add_search_arguments
from .config import MODELS, NORMS
from .train_cli import DEVICE, MAX_IMAGES

__all__ = ["COMMAND", "add_arguments"]


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=InFile(), metavar="FILE", help="checkpoint of toymodels.torch.train")
    src.add_argument("--model", type=Choice(*MODELS),
                     help="attack a freshly initialized model instead (a smoke test: its accuracy is chance)")
    p.add_argument("--norm", type=Choice(*NORMS), default="linf", help="default: linf")
    p.add_argument("--eps", type=Num(0, 100, lo_open=True), default=None,
                   help="radius ε in (0, 100] (beyond the diameter of the image cube), e.g. 8/255 "
                        "(default 8/255 for linf, 0.5 for l2)")
    p.add_argument("--queries", type=Int(1, 10 ** 7, "model evaluations per point"), default=None,
                   help="query budget per point and restart (default by image size: 5000 for images of side "
                        "<= 64 as AutoAttack, else 1000)")
    p.add_argument("--p-init", type=Num(0, 1, lo_open=True), default=None,
                   help="initial square fraction p in (0, 1] (default by image size: 0.8 for side <= 64 as "
                        "AutoAttack, else the thesis' 0.05 linf / 0.1 l2)")
    add_search_arguments(p)
    p.add_argument("--n-points", type=Int(1, MAX_IMAGES, "test images held in memory"), default=100,
                   help="test points considered (default 100)")
    p.add_argument("--pgd-steps", type=Int(1, 10 ** 4), default=50,
                   help="white-box PGD steps for pgd_robust_acc, in the attack's norm (default 50)")
    p.add_argument("--pgd-restarts", type=Int(1, 10 ** 3), default=1, help="white-box PGD restarts (default 1)")
    p.add_argument("--dataset", type=Choice(*IMAGE_DATASETS), default=None,
                   help="default: the checkpoint's, else synthetic")
    p.add_argument("--data-dir", type=InDir(), default=None,
                   help="folder holding the real datasets (nothing downloads)")
    p.add_argument("--device", type=DEVICE, default="auto", help="auto (cuda if available), cpu, cuda or cuda:K")


def _human(out: dict) -> None:
    c = out["config"]
    pgd = out["pgd_robust_acc"]
    print(f"Square Attack {c['norm']} eps={c['eps']:.4g}, {c['queries']} queries on {out['n_attacked']} correctly "
          f"classified points (clean acc {out['clean_acc']:.3f}): failure rate {out['failure_rate']:.3f}, "
          f"mean/median queries {out['mean_queries']:.1f}/{out['median_queries']:.1f}; max ‖δ‖ "
          f"{out['max_perturbation_norm']:.4g}" + (f"; white-box PGD robust acc {pgd:.3f}" if pgd is not None else "")
          + f"; {out['runtime_s']:.2f} s on {out['device_name']}")


def _attack(a, model, xc, yc, eps: float, budget, session) -> dict:
    from .square import square_attack

    if not len(yc):
        nan = float("nan")
        return {"failure_rate": nan, "mean_queries": nan, "median_queries": nan, "max_perturbation_norm": 0.0}
    res = square_attack(model, xc, yc, norm=a.norm, eps=eps, n_queries=budget[0], p_init=budget[1],
                        targeted=a.targeted, loss=a.loss, schedule=a.schedule, rescale=not a.no_rescale,
                        restarts=a.restarts, seed=a.seed, show_progress=session.show_progress)
    delta = (res.x_adv - xc).reshape(len(yc), -1)
    norms = (delta.abs().amax(1) if a.norm == "linf" else delta.norm(dim=1)).cpu().numpy()
    return {"failure_rate": res.failure_rate, "mean_queries": res.mean_queries,
            "median_queries": res.median_queries, "max_perturbation_norm": float(np.max(norms))}


def run(a, session) -> Result:
    import torch

    from ..square.attack_linf import resolve_budget
    from ..square.options import check_search_options
    from .attacks import pgd_eval
    from .pgd import pgd
    from .checkpoint import instantiate, model_source
    from .data import load
    from .device import device_name, resolve_device, seed_everything, torch_generator

    eps = a.eps if a.eps is not None else (8 / 255 if a.norm == "linf" else 0.5)
    device = resolve_device(a.device)
    src = model_source(a.checkpoint, a.model, a.dataset, a.data_dir, a.seed, device)
    _, _, x, y, num_classes = load(src.dataset, src.data_dir, int(src.config.get("n_train") or 1), a.n_points,
                                   src.data_seed)
    seed_everything(a.seed)
    model = instantiate(src, num_classes, tuple(x.shape[1:])).to(device).eval()
    x, y = x.to(device=device, dtype=next(model.parameters()).dtype), y.to(device)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    clean_acc = float(correct.float().mean())
    budget = resolve_budget(a.norm, tuple(x.shape), a.queries, a.p_init, a.restarts)
    loss = check_search_options(a.loss, a.schedule, not a.no_rescale, a.restarts, a.targeted)
    t0 = time.perf_counter()
    res = _attack(a, model, x[correct], y[correct], eps, budget, session)
    runtime = time.perf_counter() - t0
    if a.norm == "linf":
        pgd_acc = pgd_eval(model, x, y, eps, steps=a.pgd_steps, restarts=a.pgd_restarts,
                           generator=torch_generator(a.seed, "pgd"))["pgd_acc"]
    else:
        x_pgd = pgd(model, x, y, norm="l2", eps=eps, steps=a.pgd_steps, restarts=a.pgd_restarts, seed=a.seed)
        with torch.no_grad():
            pgd_acc = float((model(x_pgd).argmax(1) == y).float().mean())
    n_att = int(correct.sum())
    payload = {**res, "n_attacked": n_att, "clean_acc": clean_acc,
               "square_robust_acc": clean_acc * res["failure_rate"] if n_att else 0.0, "pgd_robust_acc": pgd_acc,
               "device_name": device_name(device), "runtime_s": runtime}
    config = {"checkpoint": a.checkpoint, "model": src.name, "dataset": src.dataset, "data_dir": src.data_dir,
              "norm": a.norm, "eps": eps, "queries": budget[0], "p_init": budget[1], "targeted": a.targeted,
              "loss": loss, "schedule": a.schedule, "rescale": not a.no_rescale, "restarts": a.restarts,
              "n_points": a.n_points, "pgd_steps": a.pgd_steps, "pgd_restarts": a.pgd_restarts, "seed": a.seed,
              "data_seed": src.data_seed, "device": str(device)}
    return Result(payload, config, human=lambda: _human({**payload, "config": config}))


COMMAND = Command("square", "Square Attack (ℓ∞ / ℓ₂, score-based black box) on a checkpoint", add_arguments, run,
                  description=__doc__.split("\n\n")[0].replace("``", ""), needs=("torch",),
                  flags={"n_test": "--n-points", "n_queries": "--queries"},
                  epilog="Example: python -m toymodels.torch square --checkpoint out/checkpoint.pt --norm linf "
                         "--eps 8/255 --queries 1000 --json",
                  smoke=("--model", "cnn", "--device", "cpu", "--queries", "5", "--n-points", "20", "--pgd-steps", "1"))
