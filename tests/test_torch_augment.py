"""Standard augmentation (random crop with zero padding + horizontal flip) of toymodels.torch.augment,
and its use in training (``TrainConfig.augment``)."""
from __future__ import annotations

import math
import os

import pytest

torch = pytest.importorskip("torch")

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.torch import augment, train  # noqa: E402
from toymodels.torch.config import TrainConfig, resolve  # noqa: E402


def _image(N=3, C=2, H=5, W=6):
    """Pixel values that name their position: 1 + n·1000 + c·100 + i·10 + j (never 0, so padding shows)."""
    n = torch.arange(N)[:, None, None, None]
    c = torch.arange(C)[None, :, None, None]
    i = torch.arange(H)[None, None, :, None]
    j = torch.arange(W)[None, None, None, :]
    return (1 + n * 1000 + c * 100 + i * 10 + j).double()


def test_deterministic_given_the_generator():
    x = torch.rand(16, 3, 8, 8)
    a = augment.random_crop_flip(x, torch.Generator().manual_seed(3))
    b = augment.random_crop_flip(x, torch.Generator().manual_seed(3))
    c = augment.random_crop_flip(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype and a.device == x.device


def test_crop_and_flip_are_shifted_and_mirrored_copies_with_zero_padding():
    p = 2
    x = _image()
    N, C, H, W = x.shape
    dy = torch.tensor([0, p, 2 * p])
    dx = torch.tensor([2 * p, p, 1])
    flips = torch.tensor([False, True, True])
    out = augment.crop_flip(x, dy, dx, flips, padding=p)
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    jj = W - 1 - j if flips[n] else j
                    si, sj = int(dy[n]) + i - p, int(dx[n]) + jj - p     # source pixel in the unpadded image
                    want = x[n, c, si, sj] if 0 <= si < H and 0 <= sj < W else 0.0
                    assert out[n, c, i, j] == want, (n, c, i, j)
    # the centred, unflipped crop is the identity; the centred flipped crop is the mirror image
    assert torch.equal(out[1], x[1].flip(-1))
    ident = augment.crop_flip(x, torch.full((N,), p), torch.full((N,), p), torch.zeros(N, dtype=torch.bool), p)
    assert torch.equal(ident, x)
    # image 0: window at (0, 2p) of the padded image = content moved down p rows and left p columns,
    # so its first p rows and last p columns are the zero padding, the rest the image
    assert torch.all(out[0, :, :p, :] == 0) and torch.all(out[0, :, :, W - p:] == 0)
    assert torch.equal(out[0, :, p:, :W - p], x[0, :, :H - p, p:])
    # image 2: window at (2p, 1), flipped: its last p rows are padding
    assert torch.all(out[2, :, H - p:, :] == 0)


def test_every_offset_in_range_and_only_padding_zeros():
    x = _image(N=200, C=1, H=6, W=6)
    dy, dx, flips = augment.draw_crop_flip(200, torch.Generator().manual_seed(0), padding=4)
    assert int(dy.min()) == 0 and int(dy.max()) == 8 and int(dx.min()) == 0 and int(dx.max()) == 8
    out = augment.crop_flip(x, dy, dx, flips, padding=4)
    # rows/columns that fall inside the image are non-zero, the rest zero
    for n in range(0, 200, 17):
        rows_in = [(0 <= int(dy[n]) + i - 4 < 6) for i in range(6)]
        cols_in = [(0 <= int(dx[n]) + (5 - j if flips[n] else j) - 4 < 6) for j in range(6)]
        mask = torch.tensor(rows_in)[:, None] & torch.tensor(cols_in)[None, :]
        assert torch.all(out[n, 0][mask] != 0) and torch.all(out[n, 0][~mask] == 0)


def test_flip_probability_is_one_half():
    # n = 20,000 flips; the count is Binomial(n, 1/2): s.e. = sqrt(n/4) ≈ 70.7; tolerance 4.5 s.e.
    n = 20_000
    _, _, flips = augment.draw_crop_flip(n, torch.Generator().manual_seed(11))
    k = int(flips.sum())
    assert abs(k - n / 2) <= 4.5 * math.sqrt(n / 4), k


def test_keeps_device_and_dtype_and_draws_on_cpu():
    x = torch.rand(4, 3, 8, 8, dtype=torch.float64)
    out = augment.random_crop_flip(x, torch.Generator().manual_seed(0), padding=0, flip=False)
    assert torch.equal(out, x) and out.dtype == torch.float64
    if torch.cuda.is_available():
        xc = x.cuda()
        g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        oc = augment.random_crop_flip(xc, g1)
        assert oc.device == xc.device
        assert torch.equal(oc.cpu(), augment.random_crop_flip(x, g2))


def test_bad_input_names_the_field():
    with pytest.raises(ConfigError, match="^x "):
        augment.random_crop_flip(torch.rand(3, 8, 8), torch.Generator())
    with pytest.raises(ConfigError, match="^dy "):
        augment.crop_flip(torch.rand(2, 1, 4, 4), torch.tensor([0, 9]), torch.tensor([0, 0]),
                          torch.tensor([False, False]), padding=4)
    with pytest.raises(ConfigError, match="^augment "):
        resolve(TrainConfig(augment="yes"))


TINY = dict(device="cpu", n_train=32, n_test=16, batch_size=16, epochs=2, eval_n=8, eval_pgd_steps=1,
            final_n=8, final_pgd_steps=1, final_restarts=1, filters=1, task="sgd", augment=True,
            sparsity_n=8, sparsity_neurons=16)


def test_augment_changes_training():
    a = train.run(TrainConfig(**{**TINY, "epochs": 1}), progress=False)
    b = train.run(TrainConfig(**{**TINY, "epochs": 1, "augment": False}), progress=False)
    assert a["config"]["augment"] is True and b["config"]["augment"] is False
    assert a["history"][-1]["train_loss"] != b["history"][-1]["train_loss"]


@pytest.mark.parametrize("task", ["sgd", "sam"])
def test_resume_with_augment_reproduces_uninterrupted_run(tmp_path, interrupted_after_checkpoint, task):
    kw = {**TINY, "task": task}
    if task == "sam":
        kw = {k: v for k, v in kw.items() if not k.startswith("sparsity")}
        kw["m"] = 8
    cfg = TrainConfig(**kw)
    a = train.run(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "a")}), progress=False)
    out_b = str(tmp_path / "b")
    with interrupted_after_checkpoint():
        train.run(TrainConfig(**{**cfg.__dict__, "out": out_b}), progress=False)
    assert torch.load(os.path.join(out_b, "checkpoint.pt"), weights_only=False)["epoch"] == 1
    b = train.run(TrainConfig(**{**cfg.__dict__, "out": out_b, "resume": True}), progress=False)
    assert a["history"] == b["history"] and a["final"] == b["final"]
    sa = torch.load(os.path.join(tmp_path / "a", "checkpoint.pt"), weights_only=False)
    sb = torch.load(os.path.join(out_b, "checkpoint.pt"), weights_only=False)
    for k, v in sa["model_state"].items():
        assert torch.equal(v, sb["model_state"][k]), k
