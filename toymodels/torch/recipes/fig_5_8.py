"""Fig. 5.8: final test accuracy of ERM→SAM and SAM→ERM vs the epoch of the switch."""
from ..recipe import Method, Recipe, Scale
from . import SAM_FULL, SAM_QUICK

RECIPE = Recipe(
    figure="5.8", title="ERM→SAM and SAM→ERM switched at different epochs",
    methods=(Method("ERM→SAM", ("--switch-to", "sam"), command="train-sgd", full=("--rho", "0.4")),
             Method("SAM→ERM", ("--switch-to", "erm"))),
    quick=Scale((*SAM_QUICK, "--rho", "0.01"), {"switch-at": ("1", "5", "9", "12")}, seeds=1),
    # Sec. 5.11: the experiments of Sec. 5.5.3 (Figs. 5.8–5.10) run 1,000 epochs; switches at 0–100 %
    full=Scale((*SAM_FULL, "--epochs", "1000", "--rho", "0.1"),
               {"switch-at": ("1", "250", "500", "750", "900", "1000")}, seeds=3, data=True),
    plot="xy", x="switch-at", metrics=("final.clean_acc",), ylabel="test accuracy",
    shows="ρ = 0.01, one seed: ERM→SAM .771–.798 and SAM→ERM .770–.796 for every switch epoch, within the noise (2–4 points): no switching effect at this scale",
    needs_real="the thesis's finding (the method of the last epochs decides the generalization; ERM→SAM uses "
               "ρ = 0.4) is on CIFAR-10 with PreAct ResNet-18, 1,000 epochs (--data-dir, a GPU)",
)
