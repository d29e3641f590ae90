"""Torch models: the single-layer CNN agrees with the numba CNN (loss, parameter and input gradients,
float64, 1e-10); weight round trip; ResNet/DenseNet output shapes; Normalize; data loading."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import small_cnn  # noqa: E402

from toymodels.errors import ConfigError  # noqa: E402
from toymodels.cnn import model as cnn  # noqa: E402
from toymodels.torch import data, models  # noqa: E402


def test_cnn_matches_numba_loss_and_gradients():
    p, x, y = small_cnn()
    net = models.cnn_from_numba(p)
    X, Y = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(y)
    loss = torch.nn.functional.cross_entropy(net(X), Y)
    gi, *gp = torch.autograd.grad(loss, [X] + list(net.parameters()))
    L, g = cnn.loss_and_grad(p, x, y)
    assert abs(loss.item() - L) < 1e-10
    for a, b in zip(gp, g.arrays):
        np.testing.assert_allclose(a.numpy(), b, rtol=0, atol=1e-10)
    # torch differentiates the mean loss: N × its input gradient is each example's own gradient
    np.testing.assert_allclose(gi.numpy() * len(y), cnn.input_grad(p, x, y), rtol=0, atol=1e-10)
    np.testing.assert_allclose(net(torch.from_numpy(x)).detach().numpy(), cnn.logits(p, x), atol=1e-12)


def test_cnn_roundtrip_and_build_model():
    p, x, y = small_cnn(1)
    back = models.cnn_to_numba(models.cnn_from_numba(p))
    for a, b in zip(back.arrays, p.arrays):
        np.testing.assert_array_equal(a, b)
    torch.manual_seed(0)
    net = models.build_model("cnn", 5, 3, 8, normalize=((0.5,) * 3, (0.25,) * 3), dtype=torch.float64)
    # normalization inside the model: net(x) = bare twin((x - m)/s), checked with hand-made logits
    q = models.cnn_to_numba(net)
    xn = torch.from_numpy((x - 0.5) / 0.25)
    a = torch.nn.functional.conv2d(xn, torch.from_numpy(q.Wc), torch.from_numpy(q.bc), padding=1).relu()
    z = a.flatten(1) @ torch.from_numpy(q.U).T + torch.from_numpy(q.c)
    np.testing.assert_allclose(net(torch.from_numpy(x)).detach().numpy(), z.numpy(), atol=1e-12)
    assert "0.mean" in net.state_dict() and "0.std" in net.state_dict()
    assert not any(n.startswith("0.") for n, _ in net.named_parameters())


@pytest.mark.parametrize("name", ["preact-resnet18", "densenet100-12"])
def test_deep_models_shapes(name):
    torch.manual_seed(0)
    net = models.build_model(name, num_classes=7, in_channels=3, image_size=16,
                             normalize=((0.5, 0.5, 0.5), (0.2, 0.2, 0.2)))
    out = net(torch.rand(2, 3, 16, 16))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    nparams = sum(p.numel() for p in net.parameters())
    # published sizes: PreAct ResNet-18 ≈ 11.2M parameters, DenseNet-BC-100-12 ≈ 0.8M
    if name == "preact-resnet18":
        assert 11.0e6 < nparams < 11.3e6
    else:
        assert 0.7e6 < nparams < 0.85e6


def test_build_model_bad_inputs():
    with pytest.raises(ConfigError, match="^model "):
        models.build_model("vgg")
    with pytest.raises(ConfigError, match="^normalize "):
        models.build_model("cnn", normalize=((0.5,), (0.2,)))
    with pytest.raises(ConfigError, match="^normalize "):
        models.Normalize((0.5,), (0.0,))


def test_data_synthetic_and_missing_dir(tmp_path):
    xtr, ytr, xte, yte, K = data.load("synthetic", n_train=20, n_test=10, seed=0)
    assert xtr.shape == (20, 3, 32, 32) and xte.shape == (10, 3, 32, 32)
    assert xtr.dtype == torch.float32 and ytr.dtype == torch.int64
    assert float(xtr.min()) >= 0 and float(xtr.max()) <= 1 and int(ytr.max()) < K
    with pytest.raises(ConfigError, match="^data_dir "):
        data.load("cifar10", data_dir=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="^dataset "):
        data.load("mnist")


def test_data_cifar10_fake_files(tmp_path):
    import pickle

    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(d / name, "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                         b"labels": list(rng.integers(0, 10, 4))}, fh)
    xtr, ytr, xte, yte, K = data.load("cifar10", data_dir=str(tmp_path))
    assert xtr.shape == (20, 3, 32, 32) and xte.shape == (4, 3, 32, 32) and K == 10
    raw = pickle.load(open(d / "test_batch", "rb"))[b"data"]
    np.testing.assert_allclose(xte.numpy().reshape(4, -1), raw / 255.0, atol=1e-7)
