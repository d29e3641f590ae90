"""Fig. 5.1: test accuracy of ERM, random weight perturbations, n-SAM (the ascent on another batch, eq.
5.21, as in thesis Sec. 5.11) and SAM (the perturbation must be the batch's own gradient's for the
benefit)."""
from ..recipe import Method, Recipe, Scale
from . import SAM_FULL, SAM_QUICK

RECIPE = Recipe(
    figure="5.1", title="ERM vs random weight perturbations vs n-SAM vs SAM (m = batch) vs 16-SAM",
    methods=(Method("ERM", ("--rho", "0")), Method("random perturbation", ("--sam-perturbation", "random")),
             Method("n-SAM (other batch)", ("--sam-ascent-batch", "other")),
             Method("SAM (m = batch)", ()), Method("16-SAM", ("--m", "16"))),
    quick=Scale((*SAM_QUICK, "--rho", "0.01"), {}, seeds=2),
    full=Scale((*SAM_FULL, "--rho", "0.1"), {}, seeds=3, data=True),
    plot="bars", metrics=("final.clean_acc",), ylabel="test accuracy",
    shows="ρ = 0.01, two seeds: ERM .737 ± .059, random .718 ± .041, n-SAM .785 ± .006, SAM .766 ± .005, 16-SAM .774 ± .003 test accuracy: the thesis's order (random ≈ ERM < SAM) but within ERM's seed spread",
    needs_real="the thesis's gaps (random perturbations ≈ ERM; 128-SAM best) are on CIFAR-10/100 with PreAct "
               "ResNet-18 / ResNet-34 over 200 epochs (--data-dir, a GPU)",
)
