"""Fig. 5.11: training and test error over epochs of ERM, standard SAM and SAM with a constant ρ (no
gradient normalization); thesis Sec. 5.6.2: 1,000 epochs (decay at 500 / 750), the best ρ = 0.2 with
normalization and ρ = 0.3 without (thesis l.2361)."""
from ..recipe import Method, Recipe, Scale
from . import SAM_FULL, SAM_QUICK

#: the miniature's base (30 epochs); its unnormalized ρ = 0.005: the CNN's minibatch gradient norm is 1.3–3.7
#: on photos (measured after 1–6 epochs), so the ascent step ρ‖∇L‖ is ≈ .007–.018, about the normalized ρ = 0.01
QUICK = (*SAM_QUICK, "--epochs", "30", "--rho", "0.01")
FULL = (*SAM_FULL, "--epochs", "1000", "--rho", "0.2")
METHODS = (Method("ERM", (), command="train-sgd"), Method("SAM", ()),
           Method("SAM, constant ρ (unnormalized)", ("--no-normalize", "--rho", "0.005"), full=("--rho", "0.3")))

RECIPE = Recipe(
    figure="5.11", title="ERM vs SAM vs SAM with constant ρ (no normalization): test and training accuracy",
    methods=METHODS,
    quick=Scale(QUICK, {}, seeds=2),
    full=Scale(FULL, {}, seeds=3, data=True),
    plot="curves", metrics=("clean_acc", "train_acc"), ylabel="accuracy",
    shows="30 epochs, two seeds, ρ = 0.01 (SAM) / 0.005 unnormalized: no method reaches zero training error here (final training accuracy ERM .907 ± .010, SAM .895 ± .002, unnormalized .870 ± .017; crops and flips, 16-filter CNN); test accuracy ERM .778 ± .011, SAM .756 ± .028, unnormalized .750 ± .049: SAM's benefit and convergence to zero error are not visible at this size",
    needs_real="both SAM variants and ERM reaching zero training error with SAM's lower test error (3.94 % / 4.15 % "
               "vs 4.75 %) is on CIFAR-10 with PreAct ResNet-18 over 1,000 epochs (--data-dir, a GPU)",
)
