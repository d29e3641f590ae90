"""``python -m toymodels.torch {train-at,train-sam,train-sgd}``: the CLI of :mod:`toymodels.torch.train`.

Examples (synthetic data, the single-layer CNN, seconds on a CPU)::

    python -m toymodels.torch train-at --attack fgsm --grad-align 0.2 --eps 8/255 --json
    python -m toymodels.torch train-sam --rho 0.05 --m 32 --json
    python -m toymodels.torch train-sgd --schedule warmup-decay --json
    python -m toymodels.torch train-at --model preact-resnet18 --dataset cifar10 --data-dir DIR \\
        --n-train 50000 --n-test 10000 --epochs 30 --batch-size 128 --device cuda --out runs/fgsm
    torchrun --nproc_per_node 2 -m toymodels.torch train-sgd --device cpu --json   # DDP

``--json`` prints exactly one JSON object (``config``, ``version``, ``device``, ``history``,
``co_epoch``, ``final``, ``diverged``, ``diverged_at``, ...); ``--out DIR`` writes ``result.json`` and
``checkpoint.pt`` there atomically, ``--resume`` continues from that checkpoint.
"""
from __future__ import annotations

import os
import sys

from .._cli import Parser, UsageError, add_common, emit_json

TASK_OF = {"train-at": "at", "train-sam": "sam", "train-sgd": "sgd"}


def _floats(name: str):
    def parse(text: str) -> tuple:
        try:
            return tuple(float(t) for t in str(text).split(",") if t.strip())
        except ValueError:
            raise UsageError(f"{name} must be a comma-separated list of numbers, got {text!r}") from None
    return parse


def _eps(text: str) -> float:
    from ..cnn.train import parse_eps

    return parse_eps(text)


def build_parser(command: str) -> Parser:
    from .data import DATASETS
    from .models import MODELS
    from .train import ATTACKS, SCHEDULES, TrainConfig

    d = TrainConfig()
    p = Parser(prog=f"python -m toymodels.torch {command}",
               description={"train-at": "Adversarial training (FGSM, FGSM-RS, PGD-k, Free-AT, GradAlign).",
                            "train-sam": "SAM / m-SAM training.",
                            "train-sgd": "SGD with large steps, warmup/decay schedules and feature sparsity."
                            }[command])
    p.add_argument("--model", default=d.model, help=f"one of {{{', '.join(MODELS)}}} (default: {d.model})")
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda or cuda:K")
    p.add_argument("--dataset", default=d.dataset, help=f"one of {{{', '.join(DATASETS)}}} (default: synthetic)")
    p.add_argument("--data-dir", default=None, help="folder with the dataset's standard files (nothing downloads)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--n-train", type=int, default=d.n_train, help=f"training images (default: {d.n_train})")
    p.add_argument("--n-test", type=int, default=d.n_test, help=f"test images (default: {d.n_test})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch size (all processes)")
    p.add_argument("--optimizer", default=None, help="sgd or adam (default: adam for the CNN under AT, else sgd)")
    p.add_argument("--lr", type=float, default=None, help="(peak) learning rate (default: adam 0.003, "
                   "sgd 0.2 for AT, 0.1 otherwise)")
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=None, help="default: 5e-4 for sgd, 0 for adam")
    p.add_argument("--schedule", default=None, help=f"one of {{{', '.join(SCHEDULES)}}} (default: at cyclic, "
                   "sam step, sgd warmup-decay)")
    p.add_argument("--warmup", default=d.warmup, help="warmup shape for warmup-decay: linear or exponential")
    p.add_argument("--warmup-frac", type=float, default=d.warmup_frac, help="fraction of the steps in warmup")
    p.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio,
                   help="exponential warmup starts at lr × this")
    p.add_argument("--decay-at", type=_floats("--decay-at"), default=d.decay_at,
                   help="fractions of training where the lr is multiplied by --decay-factor (default 0.5,0.75)")
    p.add_argument("--decay-factor", type=float, default=d.decay_factor)
    p.add_argument("--eps", type=_eps, default=d.eps, help="ℓ∞ radius, a number or a fraction like 8/255 "
                   "(attacks during training for train-at, and the evaluation attacks)")
    if command == "train-at":
        p.add_argument("--attack", default="fgsm", help=f"one of {{{', '.join(ATTACKS)}}} (default: fgsm)")
        p.add_argument("--alpha", type=_eps, default=None, help="step size (default: fgsm ε, fgsm-rs 1.25ε, pgd ε/4)")
        p.add_argument("--pgd-steps", type=int, default=d.pgd_steps)
        p.add_argument("--free-replays", type=int, default=d.free_replays, help="m of Free-AT")
        p.add_argument("--grad-align", default="0", help="GradAlign λ >= 0, or 'default' = 0.2·10^((255ε−8)/8)")
        p.add_argument("--grad-align-exact", action="store_true",
                       help="differentiate through both input gradients (default: only through ∇ℓ(x+η))")
    if command == "train-sam":
        p.add_argument("--rho", type=float, default=d.rho)
        p.add_argument("--m", type=int, default=None, help="m-SAM chunk size (default: the per-process batch)")
        p.add_argument("--no-normalize", action="store_true", help="ascent ρ∇L instead of ρ∇L/‖∇L‖")
    if command == "train-sgd":
        p.add_argument("--sparsity-layers", default="auto",
                       help="comma-separated layers: NAME (module output), NAME:in (its input), NAME:relu (ReLU of its output), auto (penultimate features, default)")
        p.add_argument("--sparsity-threshold", type=float, default=d.sparsity_threshold)
        p.add_argument("--sparsity-neurons", type=int, default=d.sparsity_neurons,
                       help="subsample layers to at most this many neurons")
        p.add_argument("--sparsity-n", type=int, default=d.sparsity_n, help="inputs for the sparsity coefficient")
    p.add_argument("--eval-n", type=int, default=d.eval_n, help="test points for the per-epoch attacks/metrics")
    p.add_argument("--eval-pgd-steps", type=int, default=d.eval_pgd_steps)
    p.add_argument("--final-n", type=int, default=d.final_n)
    p.add_argument("--final-pgd-steps", type=int, default=d.final_pgd_steps)
    p.add_argument("--final-restarts", type=int, default=d.final_restarts, help="thesis: PGD-50-10")
    p.add_argument("--filters", type=int, default=d.filters, help="filters of the cnn model")
    p.add_argument("--dtype", default=d.dtype, help="float32 or float64")
    p.add_argument("--amp", action="store_true", help="mixed precision (float16 + GradScaler on cuda)")
    p.add_argument("--nondeterministic", action="store_true",
                   help="cuda: let cuDNN autotune its kernels (faster; runs are then not bitwise reproducible)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="epochs between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    add_common(p)
    return p


def config_from_args(a, command: str):
    from .train import TrainConfig

    kw = dict(task=TASK_OF[command], model=a.model, dataset=a.dataset, data_dir=a.data_dir, n_train=a.n_train,
              n_test=a.n_test, epochs=a.epochs, batch_size=a.batch_size, optimizer=a.optimizer, lr=a.lr,
              momentum=a.momentum, weight_decay=a.weight_decay, schedule=a.schedule, warmup=a.warmup,
              warmup_frac=a.warmup_frac, warmup_ratio=a.warmup_ratio, decay_at=a.decay_at,
              decay_factor=a.decay_factor, eps=a.eps, eval_n=a.eval_n, eval_pgd_steps=a.eval_pgd_steps,
              final_n=a.final_n, final_pgd_steps=a.final_pgd_steps, final_restarts=a.final_restarts,
              filters=a.filters, dtype=a.dtype, amp=a.amp, deterministic=not a.nondeterministic, device=a.device,
              seed=a.seed, out=a.out,
              checkpoint_every=a.checkpoint_every, resume=a.resume)
    if command == "train-at":
        lam = str(a.grad_align).strip().lower()
        if lam == "default":
            from ..cnn.train import default_lambda

            lam = default_lambda(float(a.eps))
        else:
            try:
                lam = float(lam)
            except ValueError:
                raise UsageError(f"--grad-align must be a number >= 0 or 'default', got {a.grad_align!r}") from None
        kw.update(attack=a.attack, alpha=a.alpha, pgd_steps=a.pgd_steps, free_replays=a.free_replays,
                  grad_align=lam, grad_align_exact=a.grad_align_exact)
    elif command == "train-sam":
        kw.update(rho=a.rho, m=a.m, sam_normalize=not a.no_normalize)
    else:
        layers = tuple(s.strip() for s in a.sparsity_layers.split(",") if s.strip())
        if not layers:
            raise UsageError("--sparsity-layers must name at least one layer (or auto)")
        kw.update(sparsity_layers=layers, sparsity_threshold=a.sparsity_threshold,
                  sparsity_neurons=a.sparsity_neurons, sparsity_n=a.sparsity_n)
    return TrainConfig(**kw)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, dict):
        return ",".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return "-" if v is None else str(v)


def main(argv=None, command: str = "train-at") -> int:
    if command not in TASK_OF:
        raise UsageError(f"command must be one of {{{', '.join(TASK_OF)}}}, got {command!r}")
    a = build_parser(command).parse_args(argv)
    cfg = config_from_args(a, command)
    from .train import run

    import torch.distributed as dist

    ok = False
    try:
        res = run(cfg, progress=not a.json)
        ok = True
    finally:
        # under torchrun: leave the process group cleanly (exiting with gloo's threads still alive can
        # abort a rank with "terminate called without an active exception"); no barrier after an error,
        # which the other ranks may never reach
        if dist.is_available() and dist.is_initialized():
            if ok:
                dist.barrier()
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if a.json:
        emit_json(res)
        return 0
    print(f"{command} on {res['device']} (world size {res['world_size']}), {res['n_params']} parameters, "
          f"{res['steps_per_epoch']} steps/epoch, {res['runtime_s']:.1f} s")
    for rec in res["history"]:
        print("  " + "  ".join(f"{k}={_fmt(v)}" for k, v in rec.items()))
    if res["diverged"]:
        print(f"DIVERGED at {res['diverged_at']}")
    if res["final"] is not None:
        print("final: " + "  ".join(f"{k}={_fmt(v)}" for k, v in res["final"].items()))
    if res["co_epoch"] is not None:
        print(f"catastrophic overfitting at epoch {res['co_epoch']}")
    if cfg.out:
        print(f"wrote {os.path.join(cfg.out, 'result.json')} and checkpoint.pt", file=sys.stderr)
    return 0
