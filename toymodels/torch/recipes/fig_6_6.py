"""Fig. 6.6: large step sizes: training-loss stabilization, test accuracy vs the schedule length, feature
sparsity (DenseNet-100, basic setting)."""
from ..recipe import Method, Recipe, Scale

_QUICK = ("train-sgd", "--model", "cnn", "--filters", "16", "--dataset", "photos", "--n-train", "2000",
          "--n-test", "1000", "--epochs", "20", "--batch-size", "128", "--lr", "0.1", "--momentum", "0",
          "--weight-decay", "0", "--schedule", "step", "--device", "cpu")
#: the basic setting (l.3196): batch 256, exponential warmup (×1.05), no momentum, no augmentation; the text
#: gives no step size: the torch layer's default 0.1 (scale it with --lr in a JSON copy of this recipe)
_FULL = ("train-sgd", "--model", "densenet100-12", "--dataset", "cifar10", "--n-train", "50000", "--n-test", "10000",
         "--epochs", "200", "--batch-size", "256", "--momentum", "0", "--weight-decay", "0",
         "--schedule", "warmup-decay", "--warmup", "exponential")

RECIPE = Recipe(
    figure="6.6", title="Large-step SGD, lr decayed ×0.1 after 10 % / 50 % / 90 % of training",
    methods=(Method("decay at 10 %", ("--decay-at", "0.1")), Method("decay at 50 %", ("--decay-at", "0.5")),
             Method("decay at 90 %", ("--decay-at", "0.9"))),
    quick=Scale(_QUICK, {}, seeds=1),
    full=Scale(_FULL, {}, seeds=1, data=True),
    plot="curves", metrics=("train_loss", "clean_acc", "feature_sparsity.auto"), ylabel="train loss / test accuracy / sparsity",
    shows="lr 0.1 for 10 / 50 / 90 % of 20 epochs: the training loss stays around 1.1–1.7 during the large steps and drops after the decay; feature sparsity at the end .20 / .11 / .07 (longer large-step phase, sparser features, as in the thesis); test accuracy .60 / .68 / .65",
    needs_real="the thesis's loss stabilization and sparser features for longer large-step phases are for "
               "DenseNet-100 on CIFAR-10 without momentum (--data-dir, a GPU)",
)
