"""Fig. 5.9: test error over epochs of ERM, ERM→SAM and SAM→ERM switched for the last ≈10 % of epochs
(thesis l.2308; Sec. 5.5.3 runs 1,000 epochs, App. 5.11; ERM→SAM with ρ = 0.4 on CIFAR-10)."""
from ..recipe import Method, Recipe, Scale
from . import SAM_FULL, SAM_QUICK

RECIPE = Recipe(
    figure="5.9", title="ERM vs ERM→SAM vs SAM→ERM switched for the last ≈10 % of epochs: test accuracy",
    # ERM is plain SGD (train-sgd: one gradient per step, not SAM with ρ = 0); the switch is at epoch 19 of 20
    # (quick) or 901 of 1,000 (full: the `full` flags come last and override)
    methods=(Method("ERM", (), command="train-sgd"),
             Method("ERM→SAM", ("--switch-to", "sam", "--switch-at", "19"), command="train-sgd",
                    full=("--rho", "0.4", "--switch-at", "901")),
             Method("SAM→ERM", ("--switch-to", "erm", "--switch-at", "19"), full=("--switch-at", "901"))),
    quick=Scale((*SAM_QUICK, "--epochs", "20", "--rho", "0.01"), {}, seeds=2),
    full=Scale((*SAM_FULL, "--epochs", "1000", "--rho", "0.1"), {}, seeds=3, data=True),
    plot="curves", metrics=("clean_acc",), ylabel="test accuracy",
    shows="20 epochs, the method switched for the last 2 (epoch 19 on), ρ = 0.01, two seeds: final test accuracy ERM .772 ± .018, ERM→SAM .771 ± .020, SAM→ERM .758 ± .038: two epochs of SAM at the decayed lr change nothing at this size (all within the seed noise)",
    needs_real="SAM escaping ERM's worse minimum in the last 10 % of epochs (ERM→SAM, ρ = 0.4) and SAM→ERM "
               "keeping SAM's accuracy are on CIFAR-10 with PreAct ResNet-18 over 1,000 epochs (--data-dir, a GPU)",
)
