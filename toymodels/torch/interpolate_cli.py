"""``python -m toymodels.torch interpolate``: train/test loss and error along the straight line
(1 − α)·w_a + α·w_b between two checkpoints of ``toymodels.torch.train`` (thesis Fig. 5.10: w_ERM and
w_ERM→SAM), with a plot; definitions in :mod:`toymodels.torch.interpolate`.

The data are checkpoint A's: its dataset, sizes, seed, held-out split and label noise (the training labels
as trained), unless ``--dataset`` / ``--data-dir`` override them; the first ``--n-eval`` training and
test points are evaluated, BatchNorm statistics re-estimated on the first ``--bn-n`` training points
(``--bn recompute``, the thesis's choice; its code uses 5,000 augmented points, here unaugmented) or
interpolated (``--bn keep``). Without checkpoints, ``--model`` draws the two endpoints fresh from the
streams ``(seed, "interpolate-a")`` and ``(seed, "interpolate-b")`` (a smoke test of the command).
"""
from __future__ import annotations

import time

import numpy as np

from .._cli import Choice, Command, InDir, InFile, Int, Num, Result
from ..datasets import IMAGE_DATASETS
from ..errors import ConfigError
from .config import MODELS
from .train_cli import DEVICE, MAX_IMAGES

__all__ = ["COMMAND", "add_arguments"]

_POINTS = "points held in memory"


def add_arguments(p) -> None:
    p.add_argument("--a", type=InFile(), default=None, help="checkpoint of the model at α = 0")
    p.add_argument("--b", type=InFile(), default=None, help="checkpoint of the model at α = 1")
    p.add_argument("--model", type=Choice(*MODELS), default=None,
                   help="without --a/--b: two freshly initialized models of this kind (drawn with --seed)")
    p.add_argument("--dataset", type=Choice(*IMAGE_DATASETS), default=None,
                   help="default: checkpoint A's, else synthetic")
    p.add_argument("--data-dir", type=InDir(), default=None, help="folder holding the real datasets")
    p.add_argument("--points", type=Int(2, 10_001, "evaluations"), default=21,
                   help="number of α values, evenly spaced in [--alpha-min, --alpha-max] (default 21)")
    p.add_argument("--alpha-min", type=Num(-100, 100), default=0.0, help="first α in [-100, 100] (default 0; "
                   "the thesis's code: -1)")
    p.add_argument("--alpha-max", type=Num(-100, 100), default=1.0, help="last α in [-100, 100], > --alpha-min "
                   "(default 1; the thesis's code: 2)")
    p.add_argument("--bn", type=Choice("recompute", "keep"), default="recompute",
                   help="BatchNorm statistics: re-estimated on training data at every α (default, as the thesis) "
                        "or interpolated")
    p.add_argument("--n-eval", type=Int(1, MAX_IMAGES, _POINTS), default=1024,
                   help="training and test points evaluated (default 1024, the thesis's; fewer if the sets are smaller)")
    p.add_argument("--bn-n", type=Int(1, MAX_IMAGES, _POINTS), default=5000,
                   help="training points for the BatchNorm statistics (default 5000, or all if fewer)")
    p.add_argument("--device", type=DEVICE, default="auto", help="auto (cuda if available), cpu, cuda or cuda:K")


def _model_of(ck: dict, num_classes: int, shape):
    """The model of a train checkpoint with its weights (width, filters and normalization from it)."""
    import torch

    from .models import build_model

    cfg, state = ck["config"], ck["model_state"]
    norm = None
    if "0.mean" in state and "0.std" in state:
        norm = (state["0.mean"].reshape(-1).tolist(), state["0.std"].reshape(-1).tolist())
    floats = [v.dtype for v in state.values() if torch.is_floating_point(v)]
    net = build_model(cfg["model"], num_classes, shape[0], shape[1], normalize=norm,
                      filters=int(cfg.get("filters", 4)), width=cfg.get("width"),
                      dtype=floats[0] if floats else torch.float32)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError("a", f"state must fit model {cfg['model']!r} ({str(exc).splitlines()[0][:160]})") from None
    return net


def _endpoints(a, device):
    """(model_a, model_b, data dict, source config) from the checkpoints or a fresh pair."""
    from .checkpoint import load_checkpoint
    from .data import load, prepare
    from .device import seed_everything
    from .models import build_model

    if (a.a is None) != (a.b is None):
        raise ConfigError("b" if a.b is None else "a", "needs the other checkpoint too (--a and --b)")
    if a.a is None:
        if a.model is None:
            raise ConfigError("model", "is needed without --a/--b (or give both checkpoints)")
        dataset = a.dataset or "synthetic"
        xtr, ytr, xte, yte, K = load(dataset, a.data_dir, max(a.n_eval, a.bn_n), a.n_eval, seed=a.seed)
        nets = []
        for end in ("a", "b"):
            seed_everything(a.seed, f"interpolate-{end}")
            nets.append(build_model(a.model, K, xtr.shape[1], xtr.shape[2]))
        return nets[0], nets[1], {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}, \
            {"model": a.model, "dataset": dataset}
    if a.model is not None:
        raise ConfigError("model", "is only for fresh models, not with --a/--b", a.model)
    cka, ckb = load_checkpoint(a.a, device), load_checkpoint(a.b, device)
    ca = cka["config"]
    if ckb["config"].get("model") != ca["model"]:
        raise ConfigError("b", f"must be a checkpoint of the same model as --a ({ca['model']!r})", a.b)
    d = prepare(a.dataset or ca.get("dataset", "synthetic"), a.data_dir if a.data_dir else ca.get("data_dir"),
                ca.get("n_train"), ca.get("n_test"), seed=int(ca.get("seed", 0)),
                label_noise=float(ca.get("label_noise", 0.0)), heldout=int(ca.get("early_stop_n", 0)))
    shape = tuple(d["x_train"].shape[1:])
    na = _model_of(cka, d["num_classes"], shape)
    nb = _model_of(ckb, d["num_classes"], shape)
    if na.state_dict().keys() != nb.state_dict().keys() or any(
            v.shape != nb.state_dict()[k].shape for k, v in na.state_dict().items()):
        raise ConfigError("b", "must have the architecture of --a (same width, classes, layers)", a.b)
    return na, nb, d, {"model": ca["model"], "dataset": a.dataset or ca.get("dataset", "synthetic")}


def run(a, session) -> Result:
    if a.alpha_max <= a.alpha_min:
        raise ConfigError("alpha_max", f"must be > --alpha-min = {a.alpha_min}", a.alpha_max)
    from .device import device_name, resolve_device
    from .interpolate import interpolate

    device = resolve_device(a.device)
    na, nb, d, src = _endpoints(a, device)
    dtype = next(na.parameters()).dtype
    na, nb = na.to(device), nb.to(device)

    def take(x, n):
        return x[:n].to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)

    xtr, ytr = take(d["x_train"], a.n_eval), take(d["y_train"], a.n_eval)
    xte, yte = take(d["x_test"], a.n_eval), take(d["y_test"], a.n_eval)
    alphas = np.linspace(a.alpha_min, a.alpha_max, a.points)
    t0 = time.perf_counter()
    res = interpolate(na, nb, xtr, ytr, alphas, x_test=xte, y_test=yte, bn=a.bn, bn_x=take(d["x_train"], a.bn_n))
    cfg = {"a": a.a, "b": a.b, **src, "data_dir": a.data_dir, "points": a.points, "alpha_min": a.alpha_min,
           "alpha_max": a.alpha_max, "bn": a.bn, "n_eval_train": len(ytr), "n_eval_test": len(yte),
           "bn_n": min(a.bn_n, len(d["y_train"])), "seed": a.seed, "device": str(device),
           "dtype": str(dtype).replace("torch.", "")}
    payload = {**res, "device_name": device_name(device), "runtime_s": time.perf_counter() - t0}
    return Result(payload, cfg, human=lambda: _human(payload, cfg),
                  files={"interpolate.png": lambda path: _plot(payload, cfg, path)})


def _human(p: dict, c: dict) -> None:
    print(f"{c['model']} on {c['dataset']}: (1-α)·w_a + α·w_b, ‖w_b − w_a‖ = {p['distance']:.4g}, BN {c['bn']}")
    for i, al in enumerate(p["alpha"]):
        print(f"  α={al:+.3f}  train loss {p['train_loss'][i]:.4f} err {p['train_err'][i]:.4f}   "
              f"test loss {p['test_loss'][i]:.4f} err {p['test_err'][i]:.4f}")


def _plot(p: dict, c: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from .._io import save_figure

    fig = Figure(figsize=(9, 3.4))
    ax1, ax2 = fig.subplots(1, 2)
    for ax, what in ((ax1, "loss"), (ax2, "err")):
        ax.plot(p["alpha"], p[f"train_{what}"], label="train", color="C0")
        ax.plot(p["alpha"], p[f"test_{what}"], label="test", color="C1")
        ax.axvline(0, color="0.7", lw=0.8)
        ax.axvline(1, color="0.7", lw=0.8)
        ax.set_xlabel("α  (0: --a, 1: --b)")
        ax.set_ylabel("cross-entropy" if what == "loss" else "error rate")
        ax.legend()
    fig.suptitle(f"{c['model']} on {c['dataset']}: loss along (1-α)·w_a + α·w_b (BN {c['bn']})")
    save_figure(fig, path)


COMMAND = Command("interpolate", "loss and error along the line between two checkpoints", add_arguments, run,
                  description=__doc__.split("\n\n")[0].replace("``", ""), needs=("torch",),
                  flags={"early_stop_n": "--a", "model_b": "--b"},
                  epilog="Example: python -m toymodels.torch interpolate --a runs/erm/checkpoint.pt "
                         "--b runs/erm-sam/checkpoint.pt --points 31 --alpha-min -1 --alpha-max 2 --out runs/interp",
                  smoke=("--model", "cnn", "--device", "cpu", "--n-eval", "8", "--bn-n", "8", "--points", "3"))
