"""Fig. 5.3: suboptimality factor of m-sharpness (ρ = 0.1): 100 projected ascent steps vs 1 step (SAM's
perturbation) over m, for ERM and SAM models (GroupNorm in the thesis)."""
from ..recipe import Method, Recipe, Scale
from .fig_5_2 import ERM, GN_FULL, GN_QUICK

#: ρ = 0.1, K = 1 (α = ρ: SAM's step) and K = 100 (α = 0.1ρ); the factor s_100 / s_1 for each m
MEASURE = ("--sharpness-rho", "0.1", "--sharpness-steps", "1,100")

RECIPE = Recipe(
    figure="5.3", title="suboptimality factor s_100 / s_1 of m-sharpness (ρ = 0.1) over m, ERM and SAM",
    methods=(ERM, Method("SAM", ("--rho", "0.05"), full=("--rho", "0.1"))),
    quick=Scale((*GN_QUICK, "--batch-size", "16", *MEASURE, "--sharpness-m", "8,32,128"), {}, seeds=2),
    full=Scale((*GN_FULL, *MEASURE, "--sharpness-m", "4,16,64,128,256,1024"), {}, seeds=3, data=True),
    plot="profile", metrics=("m_sharpness_suboptimality_by_m.100",), x="m",
    ylabel="suboptimality factor s(100 steps) / s(1 step)",
    shows="32-filter CNNs (no normalization), batch 16, two seeds, ρ = 0.1 on the first 128 training points: s_100 / s_1 = 1.26 ± .00 / 1.34 ± .05 / 1.55 ± .21 for ERM and 1.25 ± .12 / 1.14 ± .03 / 1.30 ± .16 for SAM (ρ = .05) at m = 8 / 32 / 128: 100 steps find 14–55 % more than SAM's one step, growing with m for ERM as in the thesis, flat within noise for SAM; far from the thesis's 10× at m = 1024 (m ≤ 128 here)",
    needs_real="the thesis's factor (growing with m, up to 10x for ERM at m = 1024) is for GroupNorm PreAct "
               "ResNet-18s on CIFAR-10/100 after 200 epochs (--data-dir, a GPU)",
)
