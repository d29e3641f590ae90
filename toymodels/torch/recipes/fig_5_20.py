"""Fig. 5.20: the training objective (mean minibatch cross-entropy at the iterates + (λ/2)‖w‖², history key
``train_objective``) of ERM and SAM over the 1,000 epochs of Fig. 5.11 (thesis App. 5.12.5)."""
from ..recipe import Recipe, Scale
from .fig_5_11 import FULL, METHODS, QUICK

RECIPE = Recipe(
    figure="5.20", title="Training objective (loss + λ/2 ‖w‖²) of ERM vs SAM over epochs",
    methods=METHODS[:2],
    quick=Scale(QUICK, {}, seeds=2),
    full=Scale(FULL, {}, seeds=3, data=True),
    plot="curves", metrics=("train_objective",), ylabel="training objective",
    shows="30 epochs, two seeds, weight decay 5e-4: the training objective falls from 1.65 ± .07 (ERM) / 1.71 ± .12 (SAM) in epoch 1 to .300 ± .023 / .330 ± .022 in epoch 30, with epoch-to-epoch upticks ≤ .03 (minibatch noise); the ℓ2 term is small here (.002 → .011)",
    needs_real="the decreasing objective through the 1,000 epochs (while the training error rises slightly after the "
               "decay at epoch 500) is on CIFAR-10 with PreAct ResNet-18 (--data-dir, a GPU)",
)
