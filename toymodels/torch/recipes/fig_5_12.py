"""Fig. 5.12: training and test accuracy of ERM and SAM over epochs with 60 % label noise."""
from ..recipe import Method, Recipe, Scale
from . import SAM_FULL, SAM_QUICK

RECIPE = Recipe(
    figure="5.12", title="ERM vs SAM with 60 % label noise: training (dashed) and test (solid) accuracy",
    methods=(Method("ERM", ("--rho", "0")), Method("SAM", ())),
    quick=Scale((*SAM_QUICK, "--rho", "0.01", "--label-noise", "0.6"), {}, seeds=2),
    full=Scale((*SAM_FULL, "--rho", "0.1", "--label-noise", "0.6"), {}, seeds=3, data=True),
    plot="curves", metrics=("clean_acc", "train_acc"), ylabel="accuracy",
    shows="ρ = 0.01, 60 % noise, 12 epochs, two seeds: neither ERM nor SAM memorizes the noisy labels yet (training accuracy ≈ .30, test ≈ .51 for both)",
    needs_real="memorization of the noisy labels (test accuracy falling while training accuracy rises, later for "
               "SAM) needs CIFAR-10/100 with PreAct ResNet-18 over 200 epochs (--data-dir, a GPU)",
)
