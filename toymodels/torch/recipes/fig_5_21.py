"""Fig. 5.21: test accuracy of SAM with a constant ρ vs ρ_t decayed with the learning rate's piecewise
constant schedule (``--rho-schedule lr``; both normalized), over ρ (thesis App. 5.12.6)."""
from ..recipe import Method, Recipe, Scale
from . import SAM_FULL, SAM_QUICK

RECIPE = Recipe(
    figure="5.21", title="SAM with constant ρ vs ρ_t decayed like the learning rate",
    methods=(Method("SAM (constant ρ)", ()), Method("SAM (ρ_t ∝ lr)", ("--rho-schedule", "lr"))),
    quick=Scale(SAM_QUICK, {"rho": ("0.005", "0.01", "0.02", "0.05")}, seeds=2),
    # the thesis's ρ grid (App. 5.11)
    full=Scale(SAM_FULL, {"rho": ("0.025", "0.05", "0.1", "0.2", "0.3", "0.4")}, seeds=3, data=True),
    plot="xy", x="rho", metrics=("final.clean_acc",), ylabel="test accuracy",
    shows="two seeds, 12 epochs, lr and ρ_t ×0.1 at 50 % / 75 %: test accuracy constant vs decayed ρ .724 ± .035 / .723 ± .034 (ρ = .005), .766 ± .005 / .770 ± .010 (.01), .734 ± .006 / .733 ± .005 (.02), .615 ± .014 / .617 ± .011 (.05): no difference at this size (the runs are identical until the first decay at epoch 6 and differ by ≤ .01 after); ρ = .05 hurts both",
    needs_real="the thesis's finding (decaying ρ with the learning rate hurts) is on CIFAR-10 with PreAct "
               "ResNet-18 over 200 epochs (--data-dir, a GPU)",
)
