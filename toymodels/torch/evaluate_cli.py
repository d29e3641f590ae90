"""``python -m toymodels.torch {evaluate,leaderboard}``: the AutoAttack cascade (:mod:`toymodels.torch.evaluate`)
on a checkpoint of :mod:`toymodels.torch.train`, and a ranked table of every checkpoint in a folder.

``evaluate`` attacks the first ``--n-points`` test points of the checkpoint's own dataset (drawn again with
the checkpoint's seed, as ``square``) with the stages of ``--version`` (standard: APGD-CE, APGD-T, FAB-T,
Square; fast: APGD-CE, APGD-T with 3 targets) or ``--attacks``, each on the points still robust, and
reports ``clean_acc``, ``robust_acc``, ``robust_acc_after`` (per stage), ``broken_by`` (points per
breaking stage; ``clean`` = misclassified without attack), ``extra.square`` (queries), ``invalid``
(infeasible proposals, always 0 for correct attacks), ``runtime_s`` per stage, ``mean_clean_margin`` /
``mean_adv_margin`` (the logit margin z_y − max_{k≠y} z_k averaged over the points, before / after the
attacks), and the resolved config. ``--model NAME`` evaluates a freshly initialized model instead (a smoke
test: chance accuracy).

``leaderboard --models DIR`` evaluates every checkpoint in DIR (``DIR/*.pt`` and ``DIR/*/checkpoint.pt``,
the layout of ``train-at --out DIR/NAME``) with ``--eval-seeds`` seeds (seed, seed + 1, …) and prints them
ranked by mean robust accuracy, with the thesis Ch. 4 sanity checks per model (robust ≤ clean for every
seed, robust accuracy non-increasing along the cascade, no infeasible proposal), the seed-to-seed spread
of the evaluation (standard deviation and max − min over seeds, as thesis Table 4.2) and the runtime;
``--out`` adds ``leaderboard.png`` (clean and robust accuracy per model, the bar spanning the seeds).
"""
from __future__ import annotations

import time
from pathlib import Path

from .._cli import Choice, Command, InDir, InFile, Int, ListOf, Num, Result
from ..datasets import IMAGE_DATASETS
from ..errors import ConfigError
from .config import MODELS, NORMS
from .train_cli import DEVICE, MAX_IMAGES

__all__ = ["EVALUATE", "LEADERBOARD", "COMMANDS", "find_checkpoints"]

#: kept in sync with toymodels.torch.evaluate (which imports torch; the parsers must not)
VERSIONS = ("standard", "fast")
ATTACK_NAMES = ("apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "fab", "square", "pgd")
FRESH_MODELS = 2


def _attack_options(p) -> None:
    p.add_argument("--norm", type=Choice(*NORMS), default="linf", help="default: linf")
    p.add_argument("--eps", type=Num(0, 100, lo_open=True), default=None,
                   help="radius ε in (0, 100], e.g. 8/255 (default 8/255 for linf, 0.5 for l2)")
    p.add_argument("--version", type=Choice(*VERSIONS), default="standard",
                   help="standard: APGD-CE, APGD-T, FAB-T, Square (AutoAttack); fast: APGD-CE, APGD-T (3 targets)")
    p.add_argument("--attacks", type=ListOf(Choice(*ATTACK_NAMES), unique=True), default=None,
                   help="the stages, in order, instead of the version's (comma-separated, from "
                        "{" + ",".join(ATTACK_NAMES) + "}; budgets of --version)")
    p.add_argument("--steps", type=Int(1, 10 ** 6, "iterations per run"), default=None,
                   help="iterations of the gradient attacks (default 100; pgd 50)")
    p.add_argument("--queries", type=Int(1, 10 ** 7, "model evaluations per point"), default=None,
                   help="Square budget per point, the initialization included (default 5001 = AutoAttack's 5000 + 1)")
    p.add_argument("--n-points", type=Int(1, MAX_IMAGES, "test images held in memory"), default=500,
                   help="test points evaluated (default 500)")
    p.add_argument("--batch-size", type=Int(1, 2 ** 16, "points per attack call"), default=500,
                   help="points per attack call and forward pass (default 500)")
    p.add_argument("--dataset", type=Choice(*IMAGE_DATASETS), default=None,
                   help="default: the checkpoint's, else synthetic")
    p.add_argument("--data-dir", type=InDir(), default=None, help="folder holding the real datasets (nothing downloads)")
    p.add_argument("--device", type=DEVICE, default="auto", help="auto (cuda if available), cpu, cuda or cuda:K")


def add_evaluate_arguments(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=InFile(), metavar="FILE", help="checkpoint of toymodels.torch.train")
    src.add_argument("--model", type=Choice(*MODELS),
                     help="evaluate a freshly initialized model instead (a smoke test: its accuracy is chance)")
    _attack_options(p)


def add_leaderboard_arguments(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--models", type=InDir(), metavar="DIR",
                     help="folder of checkpoints: DIR/*.pt and DIR/*/checkpoint.pt")
    src.add_argument("--model", type=Choice(*MODELS),
                     help=f"rank {FRESH_MODELS} freshly initialized models instead (a smoke test)")
    p.add_argument("--eval-seeds", type=Int(1, 100, "full evaluations per model"), default=4,
                   help="evaluations per model with seeds seed, seed+1, ... (default 4, as thesis Table 4.2)")
    _attack_options(p)


def find_checkpoints(folder) -> list[tuple[str, str]]:
    """(name, path) of the checkpoints in ``folder``: ``*.pt`` (name: the stem) and ``*/checkpoint.pt``
    (name: the subfolder), sorted by name; none is a ConfigError (field ``models``)."""
    root = Path(folder)
    found = {p.stem: str(p) for p in root.glob("*.pt") if p.is_file()}
    found.update({p.parent.name: str(p) for p in root.glob("*/checkpoint.pt") if p.is_file()})
    if not found:
        raise ConfigError("models", "must be a folder holding checkpoints (*.pt or */checkpoint.pt)", str(folder))
    return sorted(found.items())


def _load(checkpoint, model_name, a, device, fresh_name: str = "global"):
    """(model in eval mode, x, y, source) for a checkpoint, or a fresh ``model_name`` drawn from the seed."""
    import torch

    from .checkpoint import instantiate, model_source
    from .data import load
    from .device import seed_everything

    src = model_source(checkpoint, model_name, a.dataset, a.data_dir, a.seed, device)
    _, _, x, y, k = load(src.dataset, src.data_dir, int(src.config.get("n_train") or 1), a.n_points, src.data_seed)
    seed_everything(a.seed, fresh_name)
    model = instantiate(src, k, tuple(x.shape[1:])).to(device).eval()
    dtype = next(model.parameters()).dtype
    return model, x.to(device=device, dtype=dtype), y.to(device), src, torch


def _options(a) -> dict:
    return dict(norm=a.norm, eps=a.eps if a.eps is not None else (8 / 255 if a.norm == "linf" else 0.5),
                version=a.version, attacks=a.attacks, batch_size=a.batch_size, steps=a.steps, n_queries=a.queries)


def _margins(model, x, y, x_adv, torch) -> tuple[float, float]:
    from .losses import margin

    with torch.no_grad():
        return float(margin(model(x), y).mean()), float(margin(model(x_adv), y).mean())


def _resolved(a, opts: dict) -> dict:
    from .evaluate import PGD_STEPS, SQUARE_QUERIES, VERSION_ATTACKS, VERSION_TARGETS

    attacks = list(opts["attacks"] or VERSION_ATTACKS[opts["version"]])
    return {**opts, "attacks": attacks, "steps": opts["steps"] or 100, "pgd_steps": opts["steps"] or PGD_STEPS,
            "n_queries": opts["n_queries"] or SQUARE_QUERIES, "n_target_classes": VERSION_TARGETS[opts["version"]],
            "n_points": a.n_points, "seed": a.seed, "dataset": a.dataset, "data_dir": a.data_dir}


def run_evaluate(a, session) -> Result:
    from .device import device_name, resolve_device
    from .evaluate import check_options, evaluate

    opts = _options(a)
    check_options(seed=a.seed, **opts)                  # every check before any work
    device = resolve_device(a.device)
    model, x, y, src, torch = _load(a.checkpoint, a.model, a, device)
    res = evaluate(model, x, y, seed=a.seed, show_progress=session.show_progress, **opts)
    m_clean, m_adv = _margins(model, x, y, res.x_adv, torch)
    payload = {**res.to_json(), "mean_clean_margin": m_clean, "mean_adv_margin": m_adv,
               "device_name": device_name(device)}
    config = {**_resolved(a, opts), "checkpoint": a.checkpoint, "model": src.name, "dataset": src.dataset,
              "data_dir": src.data_dir, "data_seed": src.data_seed, "device": str(device)}
    return Result(payload, config, human=lambda: _human_evaluate(payload, config))


def _human_evaluate(out: dict, c: dict) -> None:
    print(f"AutoAttack cascade ({c['version']}) {c['norm']} ε={c['eps']:.4g} on {out['n_points']} test points of "
          f"{c['dataset']} ({c['model']}, {out['device_name']})")
    print(f"  {'clean':<10} acc {out['clean_acc']:.4f}")
    for name, acc in out["robust_acc_after"].items():
        mq = out["extra"].get(name, {}).get("mean_queries")
        q = f"  mean queries {mq:.0f}" if mq is not None and mq == mq else ""      # NaN: no success
        print(f"  {name:<10} acc {acc:.4f}  broke {out['broken_by'][name]:>5}  {out['runtime_s'][name]:8.2f} s{q}")
    print(f"robust accuracy {out['robust_acc']:.4f} (invalid proposals: {sum(out['invalid'].values())})")


def _entries(a) -> list[tuple[str, str | None]]:
    """(name, checkpoint path or None for a fresh model); every checkpoint is read once first, so that a
    bad file in the folder stops the run before any evaluation."""
    if a.models is not None:
        from .checkpoint import load_checkpoint

        found = find_checkpoints(a.models)
        for _, path in found:
            load_checkpoint(path, "cpu")
        return found
    return [(f"fresh-{k}", None) for k in range(FRESH_MODELS)]


def run_leaderboard(a, session) -> Result:
    from .device import device_name, resolve_device
    from .evaluate import check_options, evaluate, rank, seed_summary

    opts = _options(a)
    check_options(seed=a.seed, **opts)
    device = resolve_device(a.device)
    entries = _entries(a)
    rows = []
    for name, path in entries:
        t0 = time.perf_counter()
        model, x, y, src, _ = _load(path, a.model, a, device, fresh_name=f"leaderboard/{name}")
        results = [evaluate(model, x, y, seed=a.seed + s, **opts) for s in range(a.eval_seeds)]
        row = {"name": name, "checkpoint": path, "model": src.name, "dataset": src.dataset,
               **seed_summary(results), "wall_s": time.perf_counter() - t0}
        rows.append(row)
        session.note(f"{name}: clean {row['clean_acc']:.3f}, robust {row['robust_acc']:.3f}")
    table = rank(rows)
    payload = {"leaderboard": table, "all_sanity_ok": all(r["sanity_ok"] for r in table),
               "device_name": device_name(device)}
    config = {**_resolved(a, opts), "models": a.models, "model": a.model, "eval_seeds": a.eval_seeds,
              "device": str(device)}
    return Result(payload, config, human=lambda: _human_leaderboard(table, config),
                  files={"leaderboard.png": lambda path: _plot(table, config, path)})


def _human_leaderboard(table: list, c: dict) -> None:
    print(f"Leaderboard: AutoAttack ({c['version']}) {c['norm']} ε={c['eps']:.4g}, {c['n_points']} points, "
          f"{c['eval_seeds']} evaluation seeds")
    print(f"{'rank':>4}  {'model':<24} {'clean':>6} {'robust':>7} {'std':>6} {'spread':>6} {'time s':>8}  sanity")
    for r in table:
        bad = [k for k, ok in r["sanity"].items() if not ok]
        print(f"{r['rank']:>4}  {r['name'][:24]:<24} {r['clean_acc']:6.3f} {r['robust_acc']:7.3f} {r['robust_std']:6.3f} "
              f"{r['robust_spread']:6.3f} {r['runtime_s']:8.1f}  {'ok' if not bad else 'FAILED: ' + ', '.join(bad)}")


def _plot(table: list, c: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure

    from .._io import save_figure

    names = [r["name"] for r in table]
    pos = np.arange(len(table))[::-1]
    fig = Figure(figsize=(7, 0.5 * len(table) + 1.6))
    ax = fig.subplots()
    ax.barh(pos + 0.2, [r["clean_acc"] for r in table], height=0.4, label="clean", color="0.7")
    ra = np.array([r["robust_acc"] for r in table])
    lo = ra - np.array([min(r["robust_acc_seeds"]) for r in table])
    hi = np.array([max(r["robust_acc_seeds"]) for r in table]) - ra
    ax.barh(pos - 0.2, ra, height=0.4, xerr=np.stack([lo, hi]), label="robust (AutoAttack)", color="C3")
    ax.set_yticks(pos, names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    ax.set_title(f"{c['version']} AutoAttack, {c['norm']} ε = {c['eps']:.4g}, {c['n_points']} points, "
                 f"{c['eval_seeds']} seeds")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_figure(fig, path)


_FLAGS = {"n_test": "--n-points", "n_queries": "--queries", "checkpoint": "--checkpoint"}

EVALUATE = Command(
    "evaluate", "AutoAttack cascade (APGD-CE, APGD-T, FAB-T, Square) on a checkpoint", add_evaluate_arguments,
    run_evaluate, description=__doc__.split("\n\n")[1].replace("``", ""), needs=("torch",), flags=_FLAGS,
    epilog="Example: python -m toymodels.torch evaluate --checkpoint runs/fgsm/checkpoint.pt --norm linf --eps 8/255 "
           "--version standard --n-points 1000 --json",
    smoke=("--model", "cnn", "--device", "cpu", "--n-points", "12", "--steps", "3", "--queries", "20"))

LEADERBOARD = Command(
    "leaderboard", "rank every checkpoint of a folder by AutoAttack robust accuracy (thesis Ch. 4)",
    add_leaderboard_arguments, run_leaderboard, description=__doc__.split("\n\n")[2].replace("``", ""),
    needs=("torch",), flags={**_FLAGS, "checkpoint": "--models"},
    epilog="Example: python -m toymodels.torch leaderboard --models runs --norm linf --eps 8/255 --n-points 1000 "
           "--out runs/leaderboard",
    smoke=("--model", "cnn", "--device", "cpu", "--n-points", "12", "--steps", "3", "--queries", "20",
           "--eval-seeds", "2", "--version", "fast"))

COMMANDS = [EVALUATE, LEADERBOARD]
