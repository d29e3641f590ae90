"""Fig. 5.10: train and test loss along the line between w_ERM and w_ERM→SAM (ResNet-18, CIFAR-10).

Each run trains ERM → SAM with the switch late in training (the last ≈ 10 % of 1,000 epochs, as Fig. 5.9, l.2308)
and, with ``--interpolate-switch``, evaluates (1 − α)·w_switch + α·w_final at the end
(:func:`toymodels.torch.records.switch_interpolation`; BatchNorm re-estimated at every α as the ``interpolate``
command does). w_ERM is here the model at the switch, i.e. the ERM model that SAM fine-tunes ("the final point
of the ERM → SAM model is situated in the same basin as the original ERM model", l.2315); if the thesis's w_ERM
is a separate ERM run continued to the last epoch, its endpoint differs by the last 10 % of epochs of ERM at the
decayed step size.
"""
from ..recipe import Method, Recipe, Scale
from . import SAM_FULL, SAM_QUICK

#: α ∈ [-1, 2] (the thesis code's range) at 13 / 31 points (0 and 1 among them)
_ALPHAS = ("--interpolate-alpha-min", "-1", "--interpolate-alpha-max", "2")

RECIPE = Recipe(
    figure="5.10", title="Loss along (1 − α)·w_ERM + α·w_ERM→SAM (SAM for the last ≈ 10 % of epochs)",
    methods=(Method("ERM→SAM", ("--switch-to", "sam"), command="train-sgd", full=("--rho", "0.4")),),
    quick=Scale((*SAM_QUICK, "--rho", "0.04", "--switch-at", "10", "--interpolate-switch", "13", *_ALPHAS), {}, seeds=3),
    # Sec. 5.5.3 runs last 1,000 epochs (App. 5.11, l.2911); the switch for the last 10 %, as fig_5_9.py
    full=Scale((*SAM_FULL, "--epochs", "1000", "--switch-at", "901", "--interpolate-switch", "31", *_ALPHAS), {},
               seeds=1, data=True),
    plot="profile", x="α (0: w_ERM, 1: w_ERM→SAM)",
    metrics=("interpolation.train_loss", "interpolation.test_loss", "interpolation.train_err", "interpolation.test_err"),
    ylabel="cross-entropy / error",
    shows='ρ = 0.04, SAM for the last 3 of 12 epochs (lr 0.002 then 0.0002), three seeds, 13 α in [−1, 2]: no barrier between w_ERM (α = 0) and w_ERM→SAM (α = 1), one basin as in the thesis; the train-loss profile is asymmetric (rises 0.058 ± 0.024 from α = 0 to −1, 0.003 ± 0.005 from 1 to 2, paired over seeds); SAM moved the weights little (‖Δw‖ = 0.024–0.038) and lowered the training loss (α = 1 minus α = 0: −0.029 ± 0.011) but not the test loss (+0.019 ± 0.024) or test error (−0.007 ± 0.006) beyond the noise',
    needs_real="the thesis's basin and the ERM→SAM test-error gain are for PreAct ResNet-18 on CIFAR-10 over 1,000 epochs with ρ = 0.4 for the last 100 (--data-dir, a GPU); w_ERM is here the model at the switch (epoch 900, the ERM model SAM fine-tunes); if the thesis's w_ERM is a separate ERM run's final model, it differs by 100 more epochs of ERM at lr 0.001",
)
