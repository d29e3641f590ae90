"""Fig. 5.2: 128-sharpness over radii ρ at the end of ERM and SAM training with large and small batches
(GroupNorm networks in the thesis, so that the sharpness does not depend on batch statistics)."""
from ..recipe import Method, Recipe, Scale
from . import SAM_FULL

#: the m-sharpness measurement of thesis Sec. 5.11: 100 projected ascent steps of 0.1ρ, m = 128
MEASURE = ("--sharpness-steps", "100", "--sharpness-m", "128")
#: CPU miniature of the GroupNorm runs: the 32-filter CNN (no normalization layer at all, so, as with
#: GroupNorm, no train/test-time discrepancy) on 256 photos crops without augmentation, fitted close to zero
#: training error in 40 epochs; sharpness on the first 128 training points (one m-batch: 100 ascent steps on
#: 256 points cost ~2.5x the training)
GN_QUICK = ("train-sam", "--model", "cnn", "--filters", "32", "--dataset", "photos", "--n-train", "256",
            "--n-test", "1000", "--epochs", "40", "--lr", "0.03", "--schedule", "step", "--eval-n", "16",
            "--final-n", "16", "--device", "cpu", "--sharpness-n", "128")
#: thesis scale: GroupNorm PreAct ResNet-18 on CIFAR-10 (Sec. 5.11), sharpness on 1,024 training points
GN_FULL = (*SAM_FULL, "--model", "preact-resnet18-gn", "--sharpness-n", "1024")
#: ERM runs with train-sgd: its per-epoch feature sparsity on 16 points only in the miniature
ERM = Method("ERM", ("--sparsity-n", "16"), command="train-sgd", full=("--sparsity-n", "256"))

RECIPE = Recipe(
    figure="5.2", title="m = 128 sharpness vs ρ at the minima of ERM and SAM, large and small batches",
    methods=(ERM, Method("SAM", ("--rho", "0.05"), full=("--rho", "0.1"))),
    quick=Scale((*GN_QUICK, *MEASURE, "--sharpness-rho", "0.05,0.1,0.2"), {"batch-size": ("128", "16")}, seeds=2),
    full=Scale((*GN_FULL, *MEASURE, "--sharpness-rho", "0.025,0.05,0.1,0.2,0.4"), {"batch-size": ("1024", "128")}, seeds=3,
               data=True),
    plot="profile", metrics=("m_sharpness.100",), x="ρ", ylabel="128-sharpness (100 ascent steps)",
    shows="32-filter CNN (no normalization) on 256 photos, two seeds, 128-sharpness (100 steps, first 128 training points) at ρ = .05/.1/.2: ERM batch 128 .090/.354/1.74 (s.e. .016/.089/.38), ERM batch 16 .019/.063/.26 (.007/.022/.09), SAM (ρ = .05) batch 128 .066/.225/1.03 (.006/.027/.07), SAM batch 16 .017/.048/.200 (.001/.000/.021): SAM flatter than ERM at the same batch and small batches far flatter (as in the thesis), yet the sharpest model, ERM at batch 128, has the best test accuracy .61 ± .05 (ERM 16 .54 ± .02, SAM 128 .56 ± .01, SAM 16 .41 ± .06): flatness does not rank generalization here either; training accuracy .80–.95, not the thesis's zero training error",
    needs_real="the thesis's counterexample (SAM at batch 1024 flatter than ERM at batch 128, which generalizes "
               "better) is for GroupNorm PreAct ResNet-18s at zero training error on CIFAR-10/100 after 200 epochs "
               "(--data-dir, a GPU)",
)
