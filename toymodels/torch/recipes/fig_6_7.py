"""Fig. 6.7: Fig. 6.6 (DenseNet-100, lr decayed ×0.1 after 10 % / 50 % / 90 % of training) in the
state-of-the-art setting: momentum 0.9, weight decay 5e-4, crops and flips (thesis l.3205)."""
from ..recipe import Method, Recipe, Scale
from .fig_6_15 import QUICK, SOTA_QUICK

#: DenseNet-100-12 on CIFAR-10, batch 256 and the exponential warmup of l.3196 (both settings), 200 epochs, as
#: fig_6_6.py; "with momentum and standard augmentations" (l.3205) and weight decay 5e-4 (the thesis code's
#: state-of-the-art value); the text gives no step size: 0.1, the usual one with momentum 0.9 (scale it with
#: --lr in a JSON copy of this recipe)
_FULL = ("train-sgd", "--model", "densenet100-12", "--dataset", "cifar10", "--n-train", "50000", "--n-test", "10000",
         "--epochs", "200", "--batch-size", "256", "--lr", "0.1", "--momentum", "0.9", "--weight-decay", "5e-4",
         "--augment", "--schedule", "warmup-decay", "--warmup", "exponential")

RECIPE = Recipe(
    figure="6.7", title="DenseNet-100, state-of-the-art setting, lr decayed ×0.1 after 10 % / 50 % / 90 % of training",
    methods=tuple(Method(f"decay at {p} %", ("--decay-at", f"{p / 100:g}")) for p in (10, 50, 90)),
    quick=Scale((*QUICK, *SOTA_QUICK), {}, seeds=2),
    full=Scale(_FULL, {}, seeds=1, data=True),
    plot="curves", metrics=("train_loss", "clean_acc", "feature_sparsity.auto"),
    ylabel="train loss / test accuracy / sparsity",
    shows='state-of-the-art miniature (lr 0.02, momentum 0.9, weight decay 5e-4, crops and flips), lr decayed at 10 / 50 / 90 % of 20 epochs, two seeds (± s.e.): final test accuracy .627 ± .019 / .763 ± .026 / .788 ± .001 and feature sparsity .283 ± .049 / .159 ± .031 / .123 ± .022 (a longer large-step phase: better and sparser, as in the thesis); the training loss levels off near 0.47 during the large steps (epochs 10–15 of the 90 % run) and falls to 0.34 after the decay',
    needs_real="DenseNet-100-12 on CIFAR-10, 200 epochs, batch 256 with the exponential warmup (--data-dir, a GPU); the thesis measures sparsity at the ends of super-blocks 3 and 4 (here the penultimate features, auto); the step size 0.1 is this recipe's choice (the text gives none)",
)
