"""Fig. 6.1: typical training dynamics of ResNet-18 on CIFAR-10 with weight decay but no momentum or
augmentation (l.3007), for a small and a large step size and different lengths of the large-step phase
("the large step size is first kept constant and then decayed", "only one step size decrease", l.3013)."""
from ..recipe import Method, Recipe, Scale
from .fig_6_15 import FULL, QUICK

#: the text gives no step sizes: large η = 0.5 without momentum (the effective step of the Ch. 5 / state-of-the-art
#: lr 0.05 with momentum 0.9), small η = 0.05; weight decay 5e-4 (the thesis code's value); one decay ×0.1
_FULL = (*FULL, "--momentum", "0", "--weight-decay", "5e-4", "--schedule", "step")
_QUICK = (*QUICK, "--momentum", "0", "--weight-decay", "5e-4")

RECIPE = Recipe(
    figure="6.1", title="ResNet-18 / CIFAR-10 with weight decay, no momentum or augmentation: small vs large η, "
                        "one decay ×0.1 after 10 % / 50 % / 90 %",
    methods=(Method("small η, decay at 50 %", ("--lr", "0.01", "--decay-at", "0.5"), full=("--lr", "0.05")),
             *(Method(f"large η, decay at {p} %", ("--lr", "0.1", "--decay-at", f"{p / 100:g}"), full=("--lr", "0.5"))
               for p in (10, 50, 90))),
    quick=Scale(_QUICK, {}, seeds=2),
    full=Scale(_FULL, {}, seeds=1, data=True),
    plot="curves", metrics=("train_loss", "clean_acc"), ylabel="train loss / test accuracy",
    shows='lr 0.1 (large) vs 0.01 (small), weight decay 5e-4, no momentum or augmentation, 20 epochs, two seeds (± s.e.): final test accuracy small η .570 ± .021; large η decayed at 10 / 50 / 90 % .564 ± .014 / .574 ± .007 / .686 ± .029: only the longest large-step phase generalizes clearly better (thesis: 12 % vs 35 % test error); the large-step training loss keeps falling slowly (1.63 at epoch 2, 1.03 at 10, 0.72 at 15) rather than stabilizing, and drops after the decay (0.44 at epoch 20 for the 90 % run)',
    needs_real="the thesis's loss stabilization and its 12 % vs 35 % test-error gap are for ResNet-18 on CIFAR-10 (--data-dir, a GPU; here PreAct ResNet-18, 100 epochs, batch 256); the text gives no step sizes: large η 0.5 and small η 0.05 are this recipe's choice",
)
