"""``python -m toymodels.torch {train-at,train-sam,train-sgd,sharpness,curvature,sharpness-study,square,evaluate,leaderboard,dln-ensemble,interpolate,recipe,sweep} ...``:
the torch layer's commands (models on cpu or cuda).

Every command except ``sweep`` needs torch (``pip install "toymodels[torch]"``); without it ``--help``
still works and a run exits 1 with one line saying what to install. Run
``python -m toymodels.torch COMMAND --help`` for the options of a command.
"""
from __future__ import annotations

from .._cli import Cli
from .curvature_cli import COMMAND as CURVATURE
from .dln_cli import COMMAND as DLN_ENSEMBLE
from .evaluate_cli import COMMANDS as EVALUATE
from .interpolate_cli import COMMAND as INTERPOLATE
from .recipe_cli import COMMAND as RECIPE
from .sharpness_cli import COMMAND as SHARPNESS
from .sharpness_study_cli import COMMAND as SHARPNESS_STUDY
from .square_cli import COMMAND as SQUARE
from .sweep_cli import COMMAND as SWEEP
from .train_cli import COMMANDS as TRAIN

PROG = "python -m toymodels.torch"

CLI = Cli(PROG, __doc__, [*TRAIN, SHARPNESS, CURVATURE, SHARPNESS_STUDY, SQUARE, *EVALUATE, DLN_ENSEMBLE, INTERPOLATE, RECIPE, SWEEP])

if __name__ == "__main__":
    raise SystemExit(CLI.main())
