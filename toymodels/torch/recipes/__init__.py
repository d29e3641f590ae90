"""The built-in recipes of :mod:`toymodels.torch.recipe`, one module per thesis figure (``fig_2_8`` is
Fig. 2.8), each defining ``RECIPE``. The shared base command lines are here.

Quick scale: the embedded ``photos`` (32×32 crops of scikit-image's photos, no download) on the CPU.
Full scale: the thesis's data from ``--data-dir``; its settings are those of thesis Sec. 2.9 (AT:
PreAct ResNet-18, 30 epochs, cyclic lr, PGD-50-10 on 1,000 test points) and Sec. 5.11 (SAM/ERM: SGD lr 0.1,
momentum 0.9, weight decay 5e-4, batch 128, crops and flips, step decay ×0.1 at 50 % and 75 %, 200 epochs).
"""

#: adversarial training, CPU miniature: the 4-filter CNN on 2,000 photos crops, PGD-20 on 200 test points
AT_QUICK = ("train-at", "--model", "cnn", "--dataset", "photos", "--n-train", "2000", "--n-test", "1000",
            "--epochs", "10", "--batch-size", "128", "--eval-n", "200", "--final-n", "200",
            "--final-pgd-steps", "20", "--device", "cpu")
#: adversarial training, thesis scale (Sec. 2.9): PreAct ResNet-18 on CIFAR-10, 30 epochs of cyclic lr,
#: PGD-50-10 on 1,000 points. Maximum lr 0.2, as the authors' script for Figs. 2.1/2.8 runs
#: every method but GradAlign; their GradAlign runs use 0.3 (GRADALIGN_FULL), which Sec. 2.9 states for all
#: (ERRATA R1)
AT_FULL = ("train-at", "--model", "preact-resnet18", "--dataset", "cifar10", "--n-train", "50000",
           "--n-test", "10000", "--epochs", "30", "--batch-size", "128", "--lr", "0.2", "--eval-n", "1000",
           "--final-n", "1000", "--final-pgd-steps", "50", "--final-restarts", "10")
#: full-scale flags of the GradAlign methods (the authors' script: --lr_max=0.30 for GradAlign only)
GRADALIGN_FULL = ("--lr", "0.3")
#: SAM / ERM, CPU miniature: a 16-filter CNN on 2,000 photos crops with augmentation (lr 0.02: at the
#: thesis's 0.1 this CNN does not train, it stays at chance; the recipes use ρ = 0.01 here: at 0.05–0.1 SAM
#: lowers its test accuracy or, with label noise, leaves it at chance)
SAM_QUICK = ("train-sam", "--model", "cnn", "--filters", "16", "--dataset", "photos", "--n-train", "2000",
             "--n-test", "1000", "--epochs", "12", "--batch-size", "128", "--augment", "--lr", "0.02",
             "--schedule", "step", "--device", "cpu")
#: SAM / ERM, thesis scale (Sec. 5.11): PreAct ResNet-18 on CIFAR-10, 200 epochs, step decay
SAM_FULL = ("train-sam", "--model", "preact-resnet18", "--dataset", "cifar10", "--n-train", "50000",
            "--n-test", "10000", "--epochs", "200", "--batch-size", "128", "--augment", "--lr", "0.1",
            "--momentum", "0.9", "--weight-decay", "5e-4", "--schedule", "step", "--decay-at", "0.5,0.75")
