"""Fig. 2.15: FGSM+GradAlign's λ ablation at ε = 16/255 without early stopping (thesis App. 2.11.4, l.800:
CO for small λ — PGD accuracy 0 or with a large spread over seeds —, the best at λ = 2, ≥ 26 % over
λ ∈ [0.25, 4], then a slow decrease from over-regularization).

The x axis is ``--grad-align`` (GradAlign's λ; 0 is plain FGSM AT). The text gives no list of λ: the full
scale spans it in factors of two around the reported range, 1/16 … 16. Maximum learning rate 0.3 (the AT
base line; Sec. 2.9 and the authors' GradAlign runs). 3 seeds (the caption). The miniature: 40/255, where the photos CNN is closest to CO,
and λ around its calibrated 1.0 (toymodels.cnn.train.PHOTOS_LAMBDA).
"""
from ..recipe import Method, Recipe, Scale
from . import AT_FULL, AT_QUICK, GRADALIGN_FULL

RECIPE = Recipe(
    figure="2.15", title="FGSM+GradAlign: robustness vs λ, no early stopping (ε = 16/255; miniature 40/255)",
    methods=(Method("FGSM+GradAlign", ("--attack", "fgsm"), full=GRADALIGN_FULL),),
    quick=Scale((*AT_QUICK, "--eps", "40/255"), {"grad-align": ("0", "0.1", "1", "10")}, seeds=2),
    full=Scale((*AT_FULL, "--eps", "16/255"),
               {"grad-align": ("0", "0.0625", "0.125", "0.25", "0.5", "1", "2", "4", "8", "16")}, seeds=3, data=True),
    plot="xy", x="grad-align", metrics=("final.pgd_acc", "final.clean_acc"), ylabel="accuracy (PGD: solid, clean: dashed)",
    shows="40/255, two seeds, PGD-20 on 200 points (mean ± s.e.): PGD accuracy λ = 0 (plain FGSM) .112 ± .067 (one seed's CO detector fires at epoch 8, final .045), λ = 0.1 .113 ± .028, λ = 1 (the photos default) .172 ± .012, λ = 10 .092 ± .027 with clean accuracy .164 ± .018 vs .34–.40 (over-regularized): the thesis's shape (unstable for small λ, lower robust and clean accuracy for large λ), but the gaps are 1–2 s.e.",
    needs_real="the thesis's curve (CO below λ ≈ 0.25, best at λ = 2, ≥ 26 % PGD-50-10 accuracy over [0.25, 4]) is "
               "PreAct ResNet-18 on CIFAR-10 at 16/255: --data-dir, a GPU, 10 λ × 3 seeds of 30 epochs",
)
