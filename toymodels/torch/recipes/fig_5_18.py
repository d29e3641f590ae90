"""Fig. 5.18: test accuracy of ERM and SAM vs the model width factor of PreAct ResNet-18 (64 is the
standard width; thesis App. 5.12.3)."""
from ..recipe import Method, Recipe, Scale
from . import SAM_FULL

#: PreAct ResNet-18 itself at widths 1–4 on 1,000 photos for 10 epochs (width 4 costs ≈ 3.6 s per SAM epoch
#: on one core; the grid axis must be --width at both scales)
QUICK = ("train-sam", "--model", "preact-resnet18", "--dataset", "photos", "--n-train", "1000", "--n-test", "1000",
         "--epochs", "10", "--batch-size", "128", "--augment", "--lr", "0.02", "--schedule", "step", "--rho", "0.01",
         "--device", "cpu")

RECIPE = Recipe(
    figure="5.18", title="ERM and SAM vs the width factor of PreAct ResNet-18",
    methods=(Method("ERM", (), command="train-sgd"), Method("SAM", ())),
    quick=Scale(QUICK, {"width": ("1", "2", "4")}, seeds=2),
    # the text gives no grid: 8–128 around the standard 64 (the largest gain is reported at 16)
    full=Scale((*SAM_FULL, "--rho", "0.1"), {"width": ("8", "16", "32", "64", "128")}, seeds=3, data=True),
    plot="xy", x="width", metrics=("final.clean_acc",), ylabel="test accuracy",
    shows="PreAct ResNet-18 at width 1 / 2 / 4 (2,945 / 11,330 / 44,444 parameters), 1,000 images, 10 epochs, ρ = 0.01, two seeds: test accuracy ERM .381 ± .091 / .390 ± .018 / .464 ± .018, SAM .253 ± .107 / .384 ± .020 / .455 ± .012: accuracy grows with the width; SAM gives no gain at these widths (the thesis too sees little or none for narrow networks); the widths of the thesis need a GPU",
    needs_real="little gain from SAM for narrow models and the largest at width 16 are on CIFAR-10 with PreAct "
               "ResNet-18 over 200 epochs (--data-dir, a GPU)",
)
