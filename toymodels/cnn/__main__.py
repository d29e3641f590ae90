"""``python -m toymodels.cnn``: the single-layer CNN of thesis Ch. 2 (Sec. 2.5, App. 2.10.2).

Subcommands:

* ``train``      — standard / FGSM / FGSM-RS / PGD-k adversarial training, optionally with GradAlign,
                   per-epoch clean/FGSM/PGD accuracy, gradient alignment and cos(δ_FGSM, δ_PGD),
                   catastrophic-overfitting detection and the culprit filter (:mod:`.train_cli`).
* ``align-init`` — gradient alignment at initialization (Lemma 2, :mod:`.align_init_cli`).
* ``evaluate``   — AutoAttack-style cascade (APGD-CE, APGD-T, Square) on a trained CNN
                   (:mod:`.evaluate_cli`).
* ``co-study``   — which method prevents catastrophic overfitting, at what epoch cost, with what robust
                   accuracy: a (method, ε, seed) grid of training runs (:mod:`.co_study_cli`).
"""
from __future__ import annotations

from .._cli import Cli
from .align_init_cli import ALIGN_INIT
from .co_study_cli import CO_STUDY
from .evaluate_cli import EVALUATE
from .train_cli import TRAIN

PROG = "python -m toymodels.cnn"

CLI = Cli(PROG, __doc__, [TRAIN, ALIGN_INIT, EVALUATE, CO_STUDY])

if __name__ == "__main__":
    raise SystemExit(CLI.main())
