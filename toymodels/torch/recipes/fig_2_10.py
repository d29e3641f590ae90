"""Fig. 2.10: the linearization error |ℓ(x+δ) − ℓ(x) − ⟨δ, ∇ₓℓ(x)⟩| vs ‖δ‖₂ at ‖δ‖∞ = 8/255, from FGSM
and random corners with a growing fraction of coordinates zeroed (App. 2.10.1), for a standard and a
PGD-10-trained model (:mod:`toymodels.torch.linearization`)."""
from ..recipe import Method, Recipe, Scale
from . import AT_FULL, AT_QUICK

RECIPE = Recipe(
    figure="2.10", title="Linearization error vs ‖δ‖₂ at ‖δ‖∞ = 8/255, standard and PGD-10-trained",
    methods=(Method("standard", ("--attack", "none")),
             Method("PGD-10 AT", ("--attack", "pgd", "--pgd-steps", "10", "--alpha-eps", "0.2"),
                    full=("--pgd-init", "zero"))),
    quick=Scale((*AT_QUICK, "--eps", "8/255", "--final-linearization"), {}, seeds=2),
    full=Scale((*AT_FULL, "--eps", "8/255", "--final-linearization"), {}, seeds=1, data=True),
    plot="profile", metrics=("final.linearization_fgsm", "final.linearization_random"), x="‖δ‖₂",
    ylabel="mean linearization error",
    shows="two seeds, 200 test points: the error grows with ‖δ‖₂ at fixed ‖δ‖∞ for both starts and both models, and far more from FGSM corners: at ‖δ‖₂ = √d·ε = 1.74, standard .431 ± .055 (FGSM) vs .013 ± .004 (random), PGD-10 AT .096 ± .009 vs .016 ± .003 — the thesis's finding; adversarial training makes the FGSM-direction error 4.5× smaller",
    needs_real="the thesis's curves are for PreAct ResNet-18 on CIFAR-10 (512 test points; here the final "
               "evaluation's 1,000): --data-dir, a GPU",
)
