"""Fig. 2.8: clean (dashed) and robust (solid) accuracy vs the training/evaluation ε of fast AT methods."""
from ..recipe import Method, Recipe, Scale
from . import AT_FULL, AT_QUICK, GRADALIGN_FULL

METHODS = (Method("FGSM", ("--attack", "fgsm")), Method("FGSM-RS", ("--attack", "fgsm-rs")),
           Method("N-FGSM", ("--attack", "n-fgsm")), Method("FGSM+GradAlign", ("--attack", "fgsm", "--reg", "gradalign"), full=GRADALIGN_FULL))

RECIPE = Recipe(
    figure="2.8", title="Robustness vs ε of FGSM, FGSM-RS, N-FGSM and FGSM+GradAlign (no early stopping)",
    methods=METHODS,
    quick=Scale(AT_QUICK, {"eps": ("16/255", "32/255", "40/255")}, seeds=1),
    full=Scale(AT_FULL, {"eps": tuple(f"{e}/255" for e in (2, 4, 6, 8, 10, 12, 14, 16))}, seeds=5, data=True),
    plot="xy", x="eps", metrics=("final.pgd_acc", "final.clean_acc"), ylabel="accuracy (PGD: solid, clean: dashed)",
    shows="one seed, 10 epochs on 2,000 images, PGD-20 on 200 points (s.e. ≈ .03): no CO at this size; robust accuracy falls with ε for every method (FGSM .30/.21/.18, GradAlign .29/.27/.19 at 16/32/40/255) and the methods are within the noise. CO in the torch layer needs 5,000 images and 15 epochs (README: FGSM CO 4/5 at 40/255)",
    needs_real="the thesis's curves (CO of FGSM from ε ≈ 8/255, GradAlign robust up to 16/255) are on CIFAR-10 with "
               "PreAct ResNet-18: --data-dir with cifar-10-batches-py, a GPU, 8 ε × 4 methods × 5 seeds of 30 epochs",
)
