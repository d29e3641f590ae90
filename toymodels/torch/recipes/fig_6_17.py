"""Fig. 6.17: convolutional filters of four layers of ResNet-18 on CIFAR-10 at initialization and after
training with a small vs a large step size η (the 50 % decay schedule, l.3590), with the relative weight
change ‖W_T − W_0‖_F / ‖W_0‖_F of those layers (``--record-filters``)."""
from ..recipe import Method, Recipe, Scale
from .fig_6_15 import FULL, basic_full

#: the miniature needs a deep net (the CNN has one conv layer): PreAct ResNet-18 at width 4 on 1,000 photos
#: crops, 10 epochs, the basic setting (no momentum, weight decay or augmentation), one decay ×0.1 at 50 %
_QUICK = ("train-sgd", "--model", "preact-resnet18", "--width", "4", "--dataset", "photos", "--n-train", "1000",
          "--n-test", "1000", "--epochs", "10", "--batch-size", "128", "--momentum", "0", "--weight-decay", "0",
          "--schedule", "step", "--decay-at", "0.5", "--record-filters", "8", "--device", "cpu")
#: the shown layers (toymodels.torch.records.shown_layers of PreAct ResNet-18): first, two middle, last 3×3 conv
LAYERS = ("conv1", "layer2_0_conv1", "layer3_1_conv1", "layer4_1_conv2")

RECIPE = Recipe(
    figure="6.17", title="Filters of four layers of ResNet-18, small vs large η (the 50 % decay schedule)",
    methods=(Method("small η", ("--lr", "0.02"), full=basic_full(0.5, 0.1)),
             Method("large η", ("--lr", "0.2"), full=basic_full(0.5))),
    quick=Scale(_QUICK, {}, seeds=2),
    full=Scale((*FULL, "--record-filters", "8"), {}, seeds=1, data=True),
    plot="filters", metrics=tuple(f"weight_change.{k}" for k in LAYERS), ylabel="‖W_T − W_0‖_F / ‖W_0‖_F",
    shows="PreAct ResNet-18 at width 4, 10 epochs on 1,000 photos crops, two seeds (± s.e.): ‖W_T − W_0‖_F / ‖W_0‖_F of conv1 / layer2_0_conv1 / layer3_1_conv1 / layer4_1_conv2 is .083 ± .002 / .041 ± .001 / .046 ± .001 / .057 ± .005 for small η (0.02) and 1.14 ± .64 / .53 ± .09 / .27 ± .08 / .20 ± .01 for large η (0.2): with the small step the early and middle filters stay near their initialization (the thesis's observation), the large step moves the first layers most; test accuracy .37 ± .05 (small η) vs .47 ± .05 (large)",
    needs_real="the thesis's filters are of ResNet-18 on CIFAR-10 in the basic setting with the 50 % schedule, 100 epochs (--data-dir, a GPU; here PreAct ResNet-18, large η the thesis code's 0.75 · 1.05^(100 t/T), small η a tenth of it: the text gives no small η)",
)
