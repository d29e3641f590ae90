"""Fig. 6.16: Fig. 6.15 for ResNet-34 on CIFAR-100 (basic and state-of-the-art settings; the settings and
schedules of :mod:`.fig_6_15`)."""
from ..recipe import Recipe, Scale
from .fig_6_15 import FULL, QUICK, methods


def _swap(base: tuple, **flags) -> tuple:
    """``base`` with the values of some of its flags replaced (``filters="32"`` → ``--filters 32``)."""
    out = list(base)
    for k, v in flags.items():
        out[out.index("--" + k.replace("_", "-")) + 1] = v
    return tuple(out)


#: the miniature has no CIFAR-100 analogue: the Fig. 6.15 miniature with a wider CNN (32 filters, as ResNet-34 is
#: larger) on fewer images per class (1,200, as CIFAR-100 has a tenth of CIFAR-10's per class)
_QUICK = _swap(QUICK, filters="32", n_train="1200")
_FULL = _swap(FULL, model="resnet34", dataset="cifar100")

RECIPE = Recipe(
    figure="6.16", title="ResNet-34 / CIFAR-100, basic and state-of-the-art settings, large-step phase of 10 % / 50 %",
    methods=methods(),
    quick=Scale(_QUICK, {}, seeds=2),
    full=Scale(_FULL, {}, seeds=1, data=True),
    plot="curves", metrics=("train_loss", "clean_acc", "feature_sparsity.auto"),
    ylabel="train loss / test accuracy / sparsity",
    shows="the Fig. 6.15 miniature with 32 filters on 1,200 images, two seeds (± s.e.); basic, small η / decay at 10 % / 50 %: test accuracy .569 ± .010 / .522 ± .001 / .554 ± .018, feature sparsity .486 ± .073 / .094 ± .006 / .060 ± .014 (the large steps give much sparser features but not better accuracy here; the 50 % run's training loss stays high, 2.46 at epoch 5, and drops to 0.82 after the decay); state of the art: .573 ± .016 / .635 ± .012 / .722 ± .028, sparsity .467 ± .067 / .215 ± .008 / .118 ± .002 (a longer large-step phase: better and sparser, as in the thesis)",
    needs_real="ResNet-34 on CIFAR-100, 100 epochs, batch 256, in the settings of Fig. 6.15 (--data-dir, a GPU); the thesis gives no step sizes for ResNet-34: those of its code's ResNet-18 commands are used",
)
