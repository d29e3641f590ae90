"""``python -m toymodels.torch square``: Square Attack (thesis Ch. 3) on a checkpoint of
:mod:`toymodels.torch.train` (or a freshly initialised model), on the correctly classified test points.

Output keys mirror ``python -m toymodels.square attack``: ``failure_rate`` (over the attacked, i.e.
correctly classified, points), ``mean_queries`` / ``median_queries`` (over successes), ``clean_acc``,
``square_robust_acc`` = clean_acc × failure_rate, ``pgd_robust_acc`` (white-box PGD on the same test
points, ℓ∞ only), ``max_perturbation_norm`` (in the attack's norm), plus ``config`` and ``version``.
"""
from __future__ import annotations

import time

import numpy as np

from .._cli import Parser, UsageError, add_common, check_choice, check_int_range, emit_json
from .._io import write_json



def _eps(text: str) -> float:
    from ..cnn.train import parse_eps

    return parse_eps(text)


def build_parser(command: str = "square") -> Parser:
    p = Parser(prog=f"python -m toymodels.torch {command}", description=__doc__.split("\n\n")[0],
               epilog="Example: python -m toymodels.torch square --checkpoint out/checkpoint.pt --norm linf "
                      "--eps 8/255 --queries 1000 --json")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="FILE", help="checkpoint of toymodels.torch.train")
    src.add_argument("--model", help="attack a freshly initialized model instead: cnn, preact-resnet18 or "
                     "densenet100-12 (a smoke test: its accuracy is chance)")
    p.add_argument("--norm", default="linf", help="linf (default) or l2")
    p.add_argument("--eps", default=None, help="radius ε > 0, e.g. 8/255 (default 8/255 for linf, 0.5 for l2)")
    p.add_argument("--queries", type=int, default=1000, help="query budget per point >= 1 (default 1000)")
    p.add_argument("--p-init", type=float, default=None, help="initial square fraction p in (0, 1] (default "
                   "0.05 linf, 0.1 l2)")
    p.add_argument("--targeted", action="store_true", help="targeted (cross-entropy) towards random wrong classes")
    p.add_argument("--n-points", type=int, default=100, help="test points considered (default 100)")
    p.add_argument("--pgd-steps", type=int, default=50, help="white-box PGD steps for pgd_robust_acc (default 50)")
    p.add_argument("--pgd-restarts", type=int, default=1, help="white-box PGD restarts (default 1)")
    p.add_argument("--dataset", default=None, help="synthetic, photos, cifar10, cifar100 or svhn (default: the "
                   "checkpoint's, else synthetic)")
    p.add_argument("--data-dir", default=None, help="folder holding the real datasets (nothing downloads)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda or cuda:K")
    add_common(p)
    return p


def main(argv=None, command: str = "square") -> int:
    import torch

    from .attacks import pgd_eval
    from .data import load
    from .device import device_name, resolve_device, seed_everything
    from .sharpness_cli import instantiate, model_source
    from .square import square_attack

    args = build_parser(command).parse_args(argv)
    check_choice("--norm", args.norm, ("linf", "l2"))
    eps = _eps(args.eps) if args.eps is not None else (8 / 255 if args.norm == "linf" else 0.5)
    if not (np.isfinite(eps) and eps > 0):
        raise UsageError(f"--eps must be > 0, got {args.eps!r}")
    check_int_range("--queries", args.queries, 1)
    if args.p_init is not None and not (0 < args.p_init <= 1):
        raise UsageError(f"--p-init must be in (0, 1], got {args.p_init}")
    check_int_range("--n-points", args.n_points, 1)
    check_int_range("--pgd-steps", args.pgd_steps, 1)
    check_int_range("--pgd-restarts", args.pgd_restarts, 1)
    check_int_range("--seed", args.seed, 0)
    device = resolve_device(args.device)
    ck, config, name, dataset, data_dir, data_seed = model_source(args, device)
    _, _, x, y, num_classes = load(dataset, data_dir, int(config.get("n_train") or 1), args.n_points, data_seed)
    seed_everything(args.seed)
    model = instantiate(name, num_classes, tuple(x.shape[1:]), ck, config)
    model.to(device).eval()
    dtype = next(model.parameters()).dtype
    x, y = x.to(device=device, dtype=dtype), y.to(device)
    with torch.no_grad():
        correct = (model(x).argmax(1) == y)
    clean_acc = float(correct.float().mean())
    xc, yc = x[correct], y[correct]
    t0 = time.perf_counter()
    if len(yc):
        res = square_attack(model, xc, yc, norm=args.norm, eps=eps, n_queries=args.queries, p_init=args.p_init,
                            targeted=args.targeted, seed=args.seed, show_progress=not args.json)
        delta = (res.x_adv - xc).reshape(len(yc), -1)
        norms = (delta.abs().amax(1) if args.norm == "linf" else delta.norm(dim=1)).cpu().numpy()
        failure, meanq, medq = res.failure_rate, res.mean_queries, res.median_queries
    else:
        norms, failure, meanq, medq = np.zeros(0), float("nan"), float("nan"), float("nan")
    runtime = time.perf_counter() - t0
    pgd_acc = None
    if args.norm == "linf":
        g = torch.Generator().manual_seed(args.seed)
        pgd_acc = pgd_eval(model, x, y, eps, steps=args.pgd_steps, restarts=args.pgd_restarts, generator=g)["pgd_acc"]
    out = {
        "failure_rate": failure, "mean_queries": meanq, "median_queries": medq,
        "n_attacked": int(len(yc)), "clean_acc": clean_acc,
        "square_robust_acc": clean_acc * failure if len(yc) else 0.0,
        "pgd_robust_acc": pgd_acc,
        "max_perturbation_norm": float(norms.max()) if norms.size else 0.0,
        "device_name": device_name(device), "runtime_s": runtime,
        "config": {"checkpoint": args.checkpoint, "model": name, "dataset": dataset, "data_dir": data_dir,
                   "norm": args.norm, "eps": eps, "queries": args.queries, "p_init": args.p_init,
                   "targeted": args.targeted, "n_points": args.n_points, "pgd_steps": args.pgd_steps,
                   "pgd_restarts": args.pgd_restarts, "seed": args.seed, "data_seed": data_seed,
                   "device": str(device)},
    }
    if args.out:
        write_json(f"{args.out}/square.json", out)
    if args.json:
        emit_json(out)
    else:
        print(f"Square Attack {args.norm} eps={eps:.4g}, {args.queries} queries on {len(yc)} correctly classified "
              f"points (clean acc {clean_acc:.3f}): failure rate {failure:.3f}, mean/median queries "
              f"{meanq:.1f}/{medq:.1f}; max ‖δ‖ {out['max_perturbation_norm']:.4g}"
              + (f"; white-box PGD robust acc {pgd_acc:.3f}" if pgd_acc is not None else "")
              + f"; {runtime:.2f} s on {device_name(device)}")
    return 0
