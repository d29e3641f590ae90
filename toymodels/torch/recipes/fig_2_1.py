"""Fig. 2.1: PGD robustness vs the training/evaluation ε of FGSM, FGSM-RS, FGSM+GradAlign, AT for Free, PGD-2
and PGD-10 AT (thesis Sec. 2.6 "Experimental setup", l.472, and Sec. 2.9, l.598–616).

Settings from the thesis: FGSM-RS with α = 1.25ε; PGD-2 with α = ε/2 and PGD-10 with α = 2ε/10
(``--alpha-eps``, the step size as a multiple of ε whatever ε is); GradAlign's λ of Table 2.2
(``--reg gradalign`` with the default λ: log-linear 0.2 · 10^((255ε − 8)/8) on CIFAR-10); AT for Free with
m = 8 minibatch replays at maximum learning rate 0.04. The thesis says Free-AT is trained "for 96 epochs": in
the authors' script (tml-epfl/understanding-fast-adv-training, sh/exps_diff_eps_cifar10.sh with
``--minibatch_replay=8 --epochs=96``) an "epoch" is one pass of the loader's iterations in which every batch
is replayed 8 times in a row, i.e. 96/8 = 12 epochs of distinct batches and 96 epochs' worth of gradient
steps: here ``--epochs 12 --free-replays 8`` (train-at's Free-AT replays each batch ``free_replays``
times per epoch). The miniature keeps the same ratio: 4 Free epochs × 8 replays ≈ 3.2 × the 10 epochs of
the other methods. Maximum learning rate as the authors' script: 0.3 for GradAlign, 0.2 for the others
(the thesis's text says 0.3 for all: ERRATA R1). PGD-AT starts from δ = 0 at full scale (``--pgd-init
zero``, Sec. 2.9: "no improvements" from a random start); the miniature keeps the random start it was
measured with. Departure: float32 training (the thesis: half precision; ``--amp`` on a GPU).
"""
from ..recipe import Method, Recipe, Scale
from . import AT_FULL, AT_QUICK, GRADALIGN_FULL

METHODS = (
    Method("FGSM", ("--attack", "fgsm")),
    Method("FGSM-RS", ("--attack", "fgsm-rs")),
    Method("FGSM+GradAlign", ("--attack", "fgsm", "--reg", "gradalign"), full=GRADALIGN_FULL),
    Method("AT for Free (m = 8)", ("--attack", "free", "--free-replays", "8", "--epochs", "4"),
           full=("--epochs", "12", "--lr", "0.04")),
    Method("PGD-2", ("--attack", "pgd", "--pgd-steps", "2", "--alpha-eps", "0.5"), full=("--pgd-init", "zero")),
    Method("PGD-10", ("--attack", "pgd", "--pgd-steps", "10", "--alpha-eps", "0.2"), full=("--pgd-init", "zero")),
)

RECIPE = Recipe(
    figure="2.1", title="PGD robustness vs ε of FGSM, FGSM-RS, FGSM+GradAlign, AT for Free, PGD-2 and PGD-10 AT",
    methods=METHODS,
    quick=Scale(AT_QUICK, {"eps": ("8/255", "32/255")}, seeds=1),
    full=Scale(AT_FULL, {"eps": tuple(f"{e}/255" for e in range(1, 17))}, seeds=5, data=True),
    plot="xy", x="eps", metrics=("final.pgd_acc", "final.clean_acc"), ylabel="accuracy (PGD: solid, clean: dashed)",
    shows="one seed, 10 epochs on 2,000 images (Free: 4 epochs × 8 replays), PGD-20 on 200 points (s.e. ≈ .03): no CO at this size. At 8/255 every method reaches .35–.44 PGD accuracy (Free .44); at 32/255 PGD-10 .28 and FGSM+GradAlign .265 lead Free .23, FGSM .21, PGD-2 .20 and FGSM-RS .19 — the thesis's order at large ε, but within about 2 s.e. of one seed (clean accuracy .32–.49 at 32/255)",
    needs_real="the thesis's curves (CO of FGSM from ε ≈ 8/255, of FGSM-RS, Free and PGD-2 at higher ε; GradAlign close "
               "to PGD-10 up to 16/255) are PreAct ResNet-18 on CIFAR-10: --data-dir with cifar-10-batches-py, a GPU, "
               "16 ε × 6 methods × 5 seeds = 480 runs of 30 epochs (Free: 12 × 8 replays)",
)
