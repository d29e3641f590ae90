"""Fig. 5.16: test accuracy of m-SAM vs m at batch 256 with group normalization (thesis App. 5.12.1)."""
from ..recipe import Method, Recipe, Scale
from . import SAM_FULL, SAM_QUICK

RECIPE = Recipe(
    figure="5.16", title="m-SAM at batch 256 vs m (group normalization in the thesis)",
    methods=(Method("m-SAM", ()),),
    # the CNN has no normalization layer (nothing batch-dependent either, as with GroupNorm)
    quick=Scale((*SAM_QUICK, "--batch-size", "256", "--rho", "0.01"), {"m": ("4", "16", "64", "256")}, seeds=2),
    # the text gives no grid of m: powers of two from 4 (Fig. 5.4's smallest) to the batch
    full=Scale((*SAM_FULL, "--model", "preact-resnet18-gn", "--batch-size", "256", "--rho", "0.1"),
               {"m": ("4", "8", "16", "32", "64", "128", "256")}, seeds=3, data=True),
    plot="xy", x="m", metrics=("final.clean_acc",), ylabel="test accuracy",
    shows="batch 256 (84 steps in 12 epochs), ρ = 0.01, two seeds: test accuracy .625 ± .006 / .601 ± .007 / .593 ± .010 / .612 ± .021 at m = 4 / 16 / 64 / 256: m = 4 is best but the curve is not monotone and m = 4 vs 256 is within the noise (≈ 0.6 joint s.e.): no clear m effect at this size",
    needs_real="the thesis's continuous gain for smaller m is for a GroupNorm PreAct ResNet-18 on CIFAR-10 at batch "
               "256 over 200 epochs (--data-dir, a GPU)",
)
