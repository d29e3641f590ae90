"""``python -m toymodels.torch sharpness``: adaptive average / worst-case m-sharpness (thesis Ch. 7) of a
checkpoint written by ``toymodels.torch.train`` (or of a freshly initialized ``--model``), on training
points of its dataset; definitions in :mod:`toymodels.torch.sharpness`.

Thesis protocol (l.4121): 2048 training points in 8 batches (``--n-examples 2048 --m 256``), Auto-PGD
with 20 steps for the worst case, 100 weight perturbations per batch for the average case.
"""
from __future__ import annotations

import pickle
import sys
import time

import numpy as np

from .._cli import (Parser, UsageError, add_common, check_choice, check_int_range, check_positive, emit_json,
                    progress)
from .._io import write_json

from .data import DATASETS  # noqa: E402


def build_parser(command: str = "sharpness") -> Parser:
    from .sharpness import KINDS

    p = Parser(prog=f"python -m toymodels.torch {command}", description=__doc__.split("\n\n")[0],
               epilog="Example: python -m toymodels.torch sharpness --model cnn --rho 0.01 --kind worst-linf --json")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="FILE", help="checkpoint of toymodels.torch.train (torch.save dict "
                     "with 'model_state' and 'config')")
    src.add_argument("--model", help="measure a freshly initialized model (seeded by --seed) instead: cnn, "
                     "preact-resnet18 or densenet100-12")
    p.add_argument("--rho", type=float, default=0.01, help="radius ρ > 0 (default 0.01)")
    p.add_argument("--kind", default="worst-linf", help=f"one of {{{', '.join(KINDS)}}} (default worst-linf)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--adaptive", dest="adaptive", action="store_true", default=True,
                   help="elementwise adaptive sharpness, c = |w| (default)")
    g.add_argument("--standard", dest="adaptive", action="store_false", help="standard sharpness, c = 1")
    p.add_argument("--m", type=int, default=None, help="m-sharpness batch size in [1, n-examples] "
                   "(default: n-examples, one batch)")
    p.add_argument("--logit-norm", action="store_true", help="normalize the logits (thesis eq. 7.5)")
    p.add_argument("--dataset", default=None, help="synthetic, photos, cifar10, cifar100 or svhn (default: the "
                   "checkpoint's, else synthetic)")
    p.add_argument("--data-dir", default=None, help="folder holding the real datasets (nothing downloads)")
    p.add_argument("--n-examples", type=int, default=256, help="training points used (default 256)")
    p.add_argument("--n-samples", type=int, default=100, help="average case: perturbations per batch (default 100)")
    p.add_argument("--n-iter", type=int, default=20, help="worst case: Auto-PGD iterations (default 20)")
    p.add_argument("--restarts", type=int, default=1, help="worst case: Auto-PGD random restarts (default 1)")
    p.add_argument("--noise", default="numpy", help="average case: draw γ with numpy (default; identical to the "
                   "numpy twin toymodels.sharpness) or torch (on the device, faster for large models on GPU)")
    p.add_argument("--max-batch", type=int, default=None, help="evaluate each batch in chunks of at most this "
                   "many points (memory only; same value)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda or cuda:K")
    add_common(p)
    return p


def _load_checkpoint(path, device):
    import torch

    try:
        try:
            ck = torch.load(path, map_location=device, weights_only=True)
        except pickle.UnpicklingError:
            # train.py checkpoints also hold numpy/python RNG states, which the weights-only loader
            # refuses: load them fully, as train.py's --resume does (only open checkpoints you trust)
            ck = torch.load(path, map_location=device, weights_only=False)
    except FileNotFoundError:
        raise UsageError(f"--checkpoint: no such file {path!r}") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a usage error
        raise UsageError(f"--checkpoint must be a torch.save file of toymodels.torch.train ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(ck, dict) or "model_state" not in ck or not isinstance(ck.get("config"), dict):
        raise UsageError("--checkpoint must hold a dict with keys 'model_state' and 'config'")
    if "model" not in ck["config"]:
        raise UsageError("--checkpoint config has no 'model' entry")
    return ck


def _build(name, num_classes, shape, state, config):
    """The model named ``name`` for images of ``shape`` (C, H, W); wrapped with the checkpoint's
    Normalize buffers when its state dict has them."""
    import torch

    from .models import MODELS, build_model

    check_choice("--model", name, MODELS)
    C, H, W = shape
    if H != W and name != "cnn":
        raise UsageError(f"--model {name} needs square images, got {H}x{W}")
    normalize = None
    if state is not None and "0.mean" in state and "0.std" in state:
        normalize = (state["0.mean"].reshape(-1).tolist(), state["0.std"].reshape(-1).tolist())
    dtype = torch.float32
    if state is not None:
        floats = [v.dtype for v in state.values() if torch.is_floating_point(v)]
        dtype = floats[0] if floats else dtype
    kw = {"filters": int(config.get("filters", 4))} if name == "cnn" else {}
    return build_model(name, num_classes, C, H, normalize=normalize, dtype=dtype, **kw)


def model_source(args, device):
    """``(checkpoint dict | None, its config, model name, dataset, data_dir, data_seed)`` for a command
    taking ``--checkpoint FILE | --model NAME`` with ``--dataset`` / ``--data-dir`` / ``--seed``: the
    checkpoint's own model and data unless overridden (shared by ``sharpness`` and ``square``)."""
    ck, config = None, {}
    if args.checkpoint is not None:
        ck = _load_checkpoint(args.checkpoint, device)
        config = ck["config"]
    name = config.get("model") if ck is not None else args.model
    dataset = args.dataset or config.get("dataset") or "synthetic"
    check_choice("--dataset", dataset, DATASETS)
    data_dir = args.data_dir if args.data_dir is not None else config.get("data_dir")
    return ck, config, name, dataset, data_dir, int(config.get("seed", args.seed))


def instantiate(name, num_classes, shape, ck, config):
    """The model (seeded init) with the checkpoint's weights loaded when ``ck`` is given."""
    model = _build(name, int(config.get("num_classes", num_classes)), shape, ck["model_state"] if ck else None, config)
    if ck is not None:
        try:
            model.load_state_dict(ck["model_state"])
        except RuntimeError as exc:
            raise UsageError(f"--checkpoint state does not fit model {name!r}: {str(exc).splitlines()[0]}") from None
    return model


def main(argv=None, command: str = "sharpness") -> int:
    import torch

    from .data import load
    from .device import device_name, resolve_device, seed_everything
    from .sharpness import KINDS, sharpness

    args = build_parser(command).parse_args(argv)
    check_positive("--rho", args.rho)
    check_choice("--kind", args.kind, KINDS)
    check_int_range("--n-examples", args.n_examples, 1)
    check_int_range("--n-samples", args.n_samples, 2)
    check_int_range("--n-iter", args.n_iter, 1)
    check_int_range("--restarts", args.restarts, 1)
    check_int_range("--seed", args.seed, 0)
    check_choice("--noise", args.noise, ("numpy", "torch"))
    if args.m is not None:
        check_int_range("--m", args.m, 1, args.n_examples)
    if args.max_batch is not None:
        check_int_range("--max-batch", args.max_batch, 1)
    device = resolve_device(args.device)
    ck, config, name, dataset, data_dir, data_seed = model_source(args, device)
    # the checkpoint's training set (same size and seed), of which the first n-examples points are used
    n_train = max(int(config.get("n_train") or args.n_examples), args.n_examples)
    x, y, _, _, num_classes = load(dataset, data_dir, n_train, 1, data_seed)
    if x.shape[0] < args.n_examples:
        raise UsageError(f"--n-examples must be <= {x.shape[0]} (training points of {dataset}), got {args.n_examples}")
    x, y = x[:args.n_examples], y[:args.n_examples]
    seed_everything(args.seed)
    model = instantiate(name, num_classes, tuple(x.shape[1:]), ck, config)
    model.to(device)
    dtype = next(model.parameters()).dtype
    x, y = x.to(device=device, dtype=dtype), y.to(device)
    m = args.m or args.n_examples
    t0 = time.perf_counter()
    bar = progress(args.n_examples // m, disable=args.json, desc=f"sharpness {args.kind}", unit="batch")
    try:
        res = sharpness(model, x, y, args.rho, kind=args.kind, m=m, adaptive=args.adaptive,
                        logit_norm=args.logit_norm, seed=args.seed, n_samples=args.n_samples, n_iter=args.n_iter,
                        n_restarts=args.restarts, max_batch=args.max_batch, noise=args.noise, progress_bar=bar)
    except FloatingPointError as exc:
        bar.close()
        sys.stderr.write(f"python -m toymodels.torch {command}: diverged: {exc}\n")
        return 1
    bar.close()
    runtime = time.perf_counter() - t0
    cfg = {"checkpoint": args.checkpoint, "model": name, "dataset": dataset, "data_dir": data_dir,
           "rho": args.rho, "kind": args.kind, "adaptive": args.adaptive, "m": m, "logit_norm": args.logit_norm,
           "n_examples": args.n_examples, "n_samples": args.n_samples, "n_iter": args.n_iter,
           "restarts": args.restarts, "noise": args.noise, "max_batch": args.max_batch, "seed": args.seed, "data_seed": data_seed,
           "device": str(device), "dtype": str(dtype).replace("torch.", ""),
           "n_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad))}
    out = {**res.to_dict(), "device_name": device_name(device), "runtime_s": runtime, "config": cfg}
    if args.out:
        write_json(f"{args.out}/sharpness.json", out)
    if args.json:
        emit_json(out)
    else:
        se = f" ± {res.se:.3g} (s.e.)" if res.se is not None else ""
        print(f"{args.kind} {'adaptive' if args.adaptive else 'standard'} sharpness (rho={args.rho}, m={m}, "
              f"{res.n_batches} batches{', logit-normalized' if args.logit_norm else ''}): {res.value:.6g}{se}")
        print(f"base loss {np.mean(res.base_loss):.6g}; {device_name(device)}; {runtime:.2f} s")
    return 0
