"""Fig. 2.4: the training process of standard, FGSM and PGD-10 AT at ε = 8/255 — per epoch, on test points:
clean, FGSM and PGD accuracy, the FGSM and PGD losses, the gradient alignment (eq. 2.5) and cos(δ_FGSM,
δ_PGD) (thesis l.419 and l.423: FGSM overfits catastrophically around epoch 23 of 30: PGD accuracy 40.1 % → 0 %,
FGSM accuracy 43.5 % → 86.7 %, gradient alignment .95 → .05 within an epoch).

train-at records these every epoch (``history``: ``clean_acc``, ``fgsm_acc``, ``pgd_acc`` = PGD-
``eval_pgd_steps`` on ``eval_n`` test points, ``fgsm_loss``, ``pgd_loss``, ``grad_alignment``,
``cos_fgsm_pgd``); the thesis evaluates every 200 iterations, here once per epoch. PGD-10 AT with α = 2ε/10
(Sec. 2.9). One training run per method, as the figure. The miniature uses the setting where the torch
layer's CNN shows CO (README: 5,000 photos crops, 15 epochs, FGSM CO in 4/5 seeds at 40/255).
"""
from ..recipe import Method, Recipe, Scale
from . import AT_FULL, AT_QUICK

_QUICK = (*AT_QUICK, "--n-train", "5000", "--epochs", "15", "--eps", "40/255")

RECIPE = Recipe(
    figure="2.4", title="Training curves of standard, FGSM and PGD-10 AT: accuracies, losses, gradient alignment",
    methods=(Method("standard", ("--attack", "none")), Method("FGSM", ("--attack", "fgsm")),
             Method("PGD-10", ("--attack", "pgd", "--pgd-steps", "10", "--alpha-eps", "0.2"), full=("--pgd-init", "zero"))),
    quick=Scale(_QUICK, {}, seeds=1),
    full=Scale((*AT_FULL, "--eps", "8/255"), {}, seeds=1, data=True),
    plot="curves", metrics=("clean_acc", "fgsm_acc", "pgd_acc", "fgsm_loss", "pgd_loss", "grad_alignment", "cos_fgsm_pgd"),
    ylabel="per epoch, on test points",
    shows="one seed at 40/255, 5,000 images, 15 epochs (PGD-10 on 200 test points per epoch, s.e. ≈ .03): FGSM overfits catastrophically at epoch 5 (PGD accuracy .11 → 0 for good, FGSM accuracy .30 → .71–.81, above its clean .25; gradient alignment .49 → .30, cos(δ_FGSM, δ_PGD) .42 → .21; PGD loss 2.5 → 8.1 while the FGSM loss falls to .54), the thesis's pattern; PGD-10 AT has none (PGD .245, clean .36, alignment .80–.91); standard training: clean .65, PGD 0. CO is seed-dependent here (README: 4/5 seeds at this setting)",
    needs_real="the thesis's CO of FGSM AT around epoch 23 (PGD accuracy 40 % → 0 %, gradient alignment .95 → .05) is "
               "PreAct ResNet-18 on CIFAR-10 at 8/255: --data-dir, a GPU, 3 runs of 30 epochs",
)
