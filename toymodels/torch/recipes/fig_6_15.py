"""Fig. 6.15: ResNet-18 on CIFAR-10 in the basic and the state-of-the-art setting: training loss, test
accuracy and feature sparsity for different lengths of the large-step phase.

The Ch. 6 deep-net settings of the thesis's code (github.com/tml-epfl/sgd-sparse-features, README; the text,
l.3196 and l.3205, gives no step sizes): ResNet-18 (here PreAct ResNet-18), width 64, 100 epochs, batch 256,

* basic (no explicit regularization, l.3576): momentum 0, weight decay 0, no augmentation, step size
  0.75 · 1.05^(100 t/T) (exponential warmup "with exponent 1.05", l.3196) until the decay at a fraction f of
  training, then ÷10, and ÷100 from 90 % (its ``piecewise_0Xepochs`` schedules, f = 0.1, 0.3, 0.5);
* state of the art (l.3580): momentum 0.9, weight decay 5e-4, crops and flips, step size 0.05, ×0.1 at f
  and at 90 % (the code's post-decay step is f/0.5 · 0.05/10, i.e. ×0.02 / ×0.06 for f = 0.1 / 0.3: not
  representable with one decay factor; here ×0.1).

"small η": the 50 % schedule at a tenth of the step size (thesis l.3207: small step sizes generalize worse).
"""
from ..recipe import Method, Recipe, Scale

#: the CPU miniature of Ch. 6 (as fig_6_6.py): the 16-filter CNN on 2,000 photos crops, one step decay ×0.1
QUICK = ("train-sgd", "--model", "cnn", "--filters", "16", "--dataset", "photos", "--n-train", "2000",
         "--n-test", "1000", "--epochs", "20", "--batch-size", "128", "--schedule", "step", "--device", "cpu")
#: ResNet-18 on CIFAR-10, the thesis code's length and batch
FULL = ("train-sgd", "--model", "preact-resnet18", "--dataset", "cifar10", "--n-train", "50000", "--n-test",
        "10000", "--epochs", "100", "--batch-size", "256")


def basic_full(f: float, scale: float = 1.0) -> tuple[str, ...]:
    """The basic setting's full-scale flags for a decay at fraction ``f``: the exponential warmup 0.75 ·
    1.05^(100 t/T) up to f (peak 0.75 · 1.05^(100 f)), then ÷10, ÷100 at 90 %; ``scale`` multiplies the
    step sizes (small η)."""
    return ("--momentum", "0", "--weight-decay", "0", "--schedule", "warmup-decay", "--warmup", "exponential",
            "--warmup-frac", f"{f:g}", "--warmup-ratio", f"{1.05 ** (-100 * f):.6g}",
            "--lr", f"{scale * 0.75 * 1.05 ** (100 * f):.6g}", "--decay-at", f"{f:g},0.9")


def sota_full(f: float, scale: float = 1.0) -> tuple[str, ...]:
    """The state-of-the-art setting's full-scale flags: step size 0.05 (× ``scale``), ×0.1 at f and at 90 %."""
    return ("--momentum", "0.9", "--weight-decay", "5e-4", "--schedule", "step", "--lr", f"{scale * 0.05:g}",
            "--decay-at", f"{f:g},0.9")


#: quick flags: basic = lr 0.1 without momentum, weight decay or augmentation (as fig_6_6.py); state of the
#: art = lr 0.02 with momentum 0.9, weight decay 5e-4 and augmentation (as SAM_QUICK: at 0.1 with momentum
#: the CNN does not train)
BASIC_QUICK = ("--lr", "0.1", "--momentum", "0", "--weight-decay", "0")
SOTA_QUICK = ("--lr", "0.02", "--momentum", "0.9", "--weight-decay", "5e-4", "--augment")


def methods(decays=(0.1, 0.5)) -> tuple[Method, ...]:
    """basic / sota × (small η at the 50 % schedule, large η decayed at each fraction of ``decays``)."""
    out = []
    for name, quick, full in (("basic", BASIC_QUICK, basic_full), ("sota", SOTA_QUICK, sota_full)):
        small = quick[:1] + (f"{float(quick[1]) / 10:g}",) + quick[2:]
        out.append(Method(f"{name}, small η", (*small, "--decay-at", "0.5"), full=full(0.5, 0.1)))
        out += [Method(f"{name}, decay at {int(f * 100)} %", (*quick, "--decay-at", f"{f:g}"), full=full(f))
                for f in decays]
    return tuple(out)


RECIPE = Recipe(
    figure="6.15", title="ResNet-18 / CIFAR-10, basic and state-of-the-art settings, large-step phase of 10 % / 50 %",
    methods=methods(),
    quick=Scale(QUICK, {}, seeds=2),
    full=Scale(FULL, {}, seeds=1, data=True),
    plot="curves", metrics=("train_loss", "clean_acc", "feature_sparsity.auto"),
    ylabel="train loss / test accuracy / sparsity",
    shows='two seeds (± s.e.), 20 epochs; basic (lr 0.1, no momentum, weight decay or augmentation), small η / decay at 10 % / 50 %: test accuracy .570 ± .021 / .577 ± .025 / .657 ± .027, feature sparsity .430 ± .086 / .144 ± .056 / .090 ± .022; state of the art (lr 0.02, momentum 0.9, weight decay 5e-4, augmentation): .580 ± .029 / .627 ± .019 / .763 ± .026, sparsity .399 ± .080 / .283 ± .049 / .159 ± .031. A longer large-step phase gives better accuracy and sparser features, the small η the worst and densest, as in the thesis; the training loss does not clearly stabilize at this size (basic, 50 %: 1.33 at epoch 5, 0.82 at 10)',
    needs_real="ResNet-18 on CIFAR-10, 100 epochs, batch 256, in the thesis code's settings (basic: 0.75 · 1.05^(100 t/T) up to the decay; state of the art: 0.05 with momentum 0.9, weight decay 5e-4, crops and flips) (--data-dir, a GPU); here PreAct ResNet-18 (the code's is a plain ResNet-18) and ×0.1 decays in the state-of-the-art setting (the code's first decay is ×0.02 / ×0.06 / ×0.1 for 10 / 30 / 50 %)",
)
