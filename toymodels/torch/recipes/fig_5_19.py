"""Fig. 5.19: 128-sharpness (ρ = 0.1) over the training of a BatchNorm network trained with SAM (ρ = 0.1),
measured with training-time BN (each m-batch's statistics) and test-time BN (running statistics)."""
from ..recipe import Method, Recipe, Scale
from . import SAM_FULL

#: ρ = 0.1, m = 128, recorded every few epochs in both BN modes (thesis Sec. 5.11: 100 steps, 1,024 points)
MEASURE = ("--rho", "0.1", "--sharpness-rho", "0.1", "--sharpness-m", "128")

RECIPE = Recipe(
    figure="5.19", title="128-sharpness over training of a BN network (SAM ρ = 0.1): training- vs test-time BN",
    methods=(Method("SAM (ρ = 0.1)", ()),),
    # miniature: PreAct ResNet-18 (BN) of width 4 on 256 photos crops, 8 epochs; 20 ascent steps on one m-batch
    # (the first 128 training points) every 2 epochs, in both BN modes
    quick=Scale(("train-sam", "--model", "preact-resnet18", "--width", "4", "--dataset", "photos", "--n-train", "256",
                 "--n-test", "500", "--epochs", "8", "--batch-size", "32", "--lr", "0.05", "--schedule", "step",
                 "--eval-n", "16", "--final-n", "16", "--device", "cpu", *MEASURE, "--sharpness-steps", "20",
                 "--sharpness-n", "128", "--sharpness-every", "2"), {}, seeds=2),
    full=Scale((*SAM_FULL, *MEASURE, "--sharpness-steps", "100", "--sharpness-n", "1024", "--sharpness-every", "10"),
               {}, seeds=3, data=True),
    plot="curves", metrics=("m_sharpness", "m_sharpness_train_bn"), ylabel="128-sharpness (ρ = 0.1)",
    shows="PreAct ResNet-18 (BN, width 4) on 256 photos, SAM ρ = 0.1, two seeds, 128-sharpness (ρ = 0.1, 20 steps, first 128 training points) at epochs 0/2/4/6/8: test-time BN .010/1.43/9.1/.44/.24 (s.e. .001/.06/1.5/.17/.02), training-time BN .144/.163/.079/.101/.064 (s.e. .006/.04/.02/.04/.003): the two differ by 4–115× (training-time BN larger at initialization, test-time BN larger from epoch 2 on), the discrepancy the thesis reports",
    needs_real="the thesis's gap between training- and test-time BN sharpness is for PreAct ResNet-18 (BN) on "
               "CIFAR-10 over 200 epochs, measured every 10 epochs here (--data-dir, a GPU)",
)
