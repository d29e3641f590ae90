"""Fig. 2.14: Fig. 2.8 with early stopping on a held-out PGD evaluation."""
from ..recipe import Recipe, Scale
from . import AT_FULL, AT_QUICK
from .fig_2_8 import METHODS

RECIPE = Recipe(
    figure="2.14", title="Robustness vs ε of fast AT methods with early stopping on held-out PGD accuracy",
    methods=METHODS,
    quick=Scale((*AT_QUICK, "--early-stop", "--early-stop-n", "500"), {"eps": ("16/255", "32/255", "40/255")}, seeds=1),
    full=Scale((*AT_FULL, "--early-stop", "--early-stop-n", "1000"),
               {"eps": tuple(f"{e}/255" for e in (2, 4, 6, 8, 10, 12, 14, 16))}, seeds=5, data=True),
    plot="xy", x="eps", metrics=("final_best.pgd_acc", "final_best.clean_acc"), ylabel="accuracy (PGD: solid, clean: dashed)",
    shows="one seed, 1,500 training images + 500 held out: the early-stopped models' PGD accuracy .12–.29, no CO in 10 epochs; the methods are within the one-seed noise (s.e. ≈ .03)",
    needs_real="the thesis's finding (early stopping rescues FGSM only partly; GradAlign needs none) is on CIFAR-10 "
               "with PreAct ResNet-18 (--data-dir, a GPU)",
)
