"""The single-layer CNN of thesis Ch. 2 (Sec. 2.5): model, attacks, metrics, adversarial training
with catastrophic-overfitting detection, and gradient alignment at initialization (Lemma 2).

Run ``python -m toymodels.cnn train --attack fgsm --seed 1`` (catastrophic overfitting on the embedded
default data, 32×32 crops of the colour photos shipped with scikit-image, at ε = 24/255; CO occurs in
some seeds, 3 of 0–9) and ``python -m toymodels.cnn train --attack fgsm --grad-align default --seed 1``
(prevented by GradAlign, λ = 1).

From Python::

    from toymodels.datasets import load_images
    from toymodels.cnn.train import TrainConfig, train
    res = train(load_images("photos"), TrainConfig(attack="fgsm", eps=24 / 255))
    print(res.co_epoch, res.final["pgd_acc"], res.grad_alignment_without_culprit)
"""
