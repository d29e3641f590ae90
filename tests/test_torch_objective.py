"""History ``train_objective`` of train-sam / train-sgd (thesis Fig. 5.20, "the total objective value
including the ℓ2 regularization term"): per epoch, the mean over its steps of L_B(w_t) + (λ/2)‖w_t‖²,
with L_B(w_t) the step's minibatch loss at the iterate w_t (``train_loss``; for SAM the first pass's, at
w_t, not at w_t + e) and λ the optimizer's ``weight_decay``, applied to every parameter it holds.

Checked against independent computations in float64 on the tiny single-layer CNN: (1) with a learning
rate so small that the weights never move, the epoch's objective is the full training set's mean
cross-entropy at the initial weights plus (λ/2)·Σ p² over all parameters, computed here by hand; (2) with
moving weights, against the minibatch losses and Σ p² recorded at every step."""
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from toymodels.torch import data, train  # noqa: E402

#: 48 training images in 3 batches of 16 (every image once per epoch), no augmentation, no BatchNorm
TINY = dict(model="cnn", filters=2, n_train=48, n_test=8, batch_size=16, eval_n=4, final_n=4, device="cpu",
            dtype="float64", eval_pgd_steps=1, final_pgd_steps=1, schedule="constant", rho=0.05)


def _by_hand(net, lam):
    d = data.prepare("synthetic", None, 48, 8, seed=0)
    with torch.no_grad():
        loss = float(F.cross_entropy(net(d["x_train"].double()), d["y_train"]))
        l2 = sum(float((p.double() ** 2).sum()) for p in net.parameters())
    return loss + lam / 2 * l2, l2


@pytest.mark.parametrize("task", ["sgd", "sam"])
def test_objective_at_fixed_weights_is_full_loss_plus_half_lambda_norm(task):
    lam = 0.05
    res, net = train.run(train.TrainConfig(task=task, epochs=2, lr=1e-300, weight_decay=lam, **TINY),
                         progress=False, return_model=True)
    want, l2 = _by_hand(net, lam)
    assert l2 > 1.0 and lam / 2 * l2 > 0.02                            # the ℓ2 term is not negligible here
    for h in res["history"][1:]:
        assert h["train_objective"] == pytest.approx(want, rel=1e-12, abs=0)
    # biases count too (PyTorch's weight_decay decays them): the weight-only sum would miss this much
    bias = sum(float((p.detach() ** 2).sum()) for n, p in net.named_parameters() if n.endswith("bias"))
    assert lam / 2 * bias > 1e-6


@pytest.mark.parametrize("task, extra", [("sgd", {}), ("sam", {}), ("sam", {"switch_at": 2, "switch_to": "erm"}),
                                         ("sam", {"momentum": 0.0, "m": 8})])
def test_objective_is_the_epoch_mean_of_loss_plus_l2_at_the_iterates(monkeypatch, task, extra):
    lam, rec = 0.01, []
    orig = train._switched_step

    def spy(r, st, x, y, epoch):
        l2 = sum(float((p.detach() ** 2).sum()) for p in r.net.parameters())   # at w_t, before the update
        loss, acc = orig(r, st, x, y, epoch)
        rec.append((epoch, loss, l2))
        return loss, acc

    monkeypatch.setattr(train, "_switched_step", spy)
    res = train.run(train.TrainConfig(task=task, epochs=3, lr=0.05, weight_decay=lam, **TINY, **extra),
                    progress=False)
    assert len(rec) == 9
    for h in res["history"][1:]:
        steps = [(loss, l2) for e, loss, l2 in rec if e == h["epoch"]]
        want = sum(loss + lam / 2 * l2 for loss, l2 in steps) / len(steps)
        assert h["train_objective"] == pytest.approx(want, rel=1e-12, abs=0)
        assert h["train_loss"] == pytest.approx(sum(s[0] for s in steps) / len(steps), rel=1e-12)
    # the weights moved: the per-step ℓ2 terms differ (the epoch mean is not the end-of-epoch value)
    assert len({round(l2, 12) for _, _, l2 in rec}) > 3


def test_no_weight_decay_gives_the_training_loss_and_at_has_none():
    res = train.run(train.TrainConfig(task="sam", epochs=1, weight_decay=0.0, **TINY), progress=False)
    h = res["history"][-1]
    assert h["train_objective"] == h["train_loss"]
    at = train.run(train.TrainConfig(task="at", epochs=1, **{k: v for k, v in TINY.items() if k != "rho"}),
                   progress=False)
    assert all("train_objective" not in h for h in at["history"])
