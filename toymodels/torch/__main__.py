"""``python -m toymodels.torch {train-at,train-sam,train-sgd,sharpness,square,dln-ensemble,sweep} ...``

Each subcommand lives in its own module exposing ``main(argv, command) -> int | None``; it is run
through :func:`toymodels._cli.run_main`, so a :class:`toymodels._cli.UsageError` raised anywhere becomes
exit 2 with one line on stderr. Build parsers with ``toymodels._cli.Parser(prog=f"python -m
toymodels.torch {command}")``."""
from __future__ import annotations

import importlib
import sys

from .._cli import run_main

#: subcommand -> (module, one-line description)
COMMANDS = {
    "train-at": ("toymodels.torch.train_cli", "adversarial training (FGSM, FGSM-RS, PGD, Free-AT, GradAlign)"),
    "train-sam": ("toymodels.torch.train_cli", "SAM / m-SAM / n-SAM training"),
    "train-sgd": ("toymodels.torch.train_cli", "large-step SGD with warmup/decay schedules and feature sparsity"),
    "sharpness": ("toymodels.torch.sharpness_cli", "adaptive average / worst-case m-sharpness of a checkpoint"),
    "square": ("toymodels.torch.square_cli", "Square Attack (ℓ∞ / ℓ₂, score-based black box) on a checkpoint"),
    "dln-ensemble": ("toymodels.torch.dln_cli", "batched diagonal linear network ensembles (same options as toymodels.dln)"),
    "sweep": ("toymodels.torch.sweep_cli", "grids over ε, ρ, seeds: locally or on a Dask cluster"),
}

USAGE = ("usage: python -m toymodels.torch {" + ",".join(COMMANDS) + "} [options]\n\n" +
         "\n".join(f"  {k:<13} {v[1]}" for k, v in COMMANDS.items()) +
         "\n\nRun `python -m toymodels.torch COMMAND --help` for the options of a command.\n")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        sys.stderr.write(f"toymodels.torch: error: COMMAND must be one of {{{', '.join(COMMANDS)}}}, got {cmd!r}\n")
        return 2
    module = importlib.import_module(COMMANDS[cmd][0])
    return run_main(lambda a: module.main(a, command=cmd), rest, prog=f"python -m toymodels.torch {cmd}")


if __name__ == "__main__":
    sys.exit(main())
