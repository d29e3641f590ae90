"""Fig. 2.16: FGSM+GradAlign at ε = 8/255 without early stopping, trained for different total numbers of
epochs (thesis App. 2.11.4, l.802–804: {30, 50, 100, 150, 250} epochs; longer training slightly lowers the
PGD accuracy and slightly raises the clean accuracy — robust, not catastrophic, overfitting; no CO).

The cyclic learning-rate schedule stretches over the whole run, as in the thesis. GradAlign's λ at 8/255 is
Table 2.2's 0.2 (the default λ); maximum learning rate 0.3 (the AT base line). 3 seeds (the
caption). The miniature keeps 8/255 and trains the photos CNN for 5, 10 and 20 epochs.
"""
from ..recipe import Method, Recipe, Scale
from . import AT_FULL, AT_QUICK, GRADALIGN_FULL

RECIPE = Recipe(
    figure="2.16", title="FGSM+GradAlign at ε = 8/255: clean and PGD accuracy vs the number of training epochs",
    methods=(Method("FGSM+GradAlign", ("--attack", "fgsm", "--reg", "gradalign", "--eps", "8/255"), full=GRADALIGN_FULL),),
    quick=Scale(AT_QUICK, {"epochs": ("5", "10", "20")}, seeds=2),
    full=Scale(AT_FULL, {"epochs": ("30", "50", "100", "150", "250")}, seeds=3, data=True),
    plot="xy", x="epochs", metrics=("final.pgd_acc", "final.clean_acc"), ylabel="accuracy (PGD: solid, clean: dashed)",
    shows="8/255, two seeds, PGD-20 on 200 points (mean ± s.e.): no CO at any length; 5 / 10 / 20 epochs give PGD accuracy .347 ± .003 / .375 ± .010 / .397 ± .038 and clean accuracy .493 ± .047 / .538 ± .040 / .561 ± .036 — the small CNN is still underfitting, so longer training helps both and the thesis's slight robust overfitting (PGD accuracy down after 30+ epochs) does not show at this size",
    needs_real="the thesis's trend (PGD-50-10 accuracy slightly down, clean accuracy slightly up from 30 to 250 "
               "epochs, never CO) is PreAct ResNet-18 on CIFAR-10: --data-dir, a GPU, 5 lengths × 3 seeds (580 epochs "
               "per seed, 1,740 in all)",
)
