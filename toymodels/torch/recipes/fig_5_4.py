"""Fig. 5.4: test error of m-SAM with 1 vs 10 projected ascent steps, for small and large m."""
from ..recipe import Method, Recipe, Scale
from . import SAM_FULL, SAM_QUICK

RECIPE = Recipe(
    figure="5.4", title="m-SAM with 1 vs 10 ascent steps, small vs large m (group normalization in the thesis)",
    methods=(Method("1 step", ("--sam-steps", "1")), Method("10 steps", ("--sam-steps", "10"))),
    quick=Scale((*SAM_QUICK, "--rho", "0.01"), {"m": ("16", "128")}, seeds=2),
    full=Scale((*SAM_FULL, "--model", "preact-resnet18-gn", "--batch-size", "256", "--rho", "0.1"),
               {"m": ("4", "256")}, seeds=3, data=True),
    plot="bars", metrics=("final.clean_acc",), ylabel="test accuracy",
    shows="ρ = 0.01, two seeds: 1 ascent step .774 / .766 (m = 16 / 128), 10 steps .740 / .729: more ascent steps do not help (as in the thesis); m makes no visible difference here",
    needs_real="the thesis's finding (more ascent steps do not help; small m does) is for a GroupNorm PreAct "
               "ResNet-18 on CIFAR-10 at batch 256 (--data-dir, a GPU)",
)
