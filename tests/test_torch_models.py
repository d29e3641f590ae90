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


# ------------------------------------------------------------------------------------------------
# issue 16: GroupNorm / width / wide / ResNet-34 variants — parameter counts by per-layer formulas
# ------------------------------------------------------------------------------------------------
def _conv(cin, cout, k=3):
    return cin * cout * k * k                    # bias-free convolutions throughout


def _preact18_count(K, C=3, w=64):
    """Stem conv, 8 pre-activation blocks (norm 2·in, conv, norm 2·out, conv, 1×1 projection when the
    shape changes), final norm, linear. BN and GN both have 2 parameters per channel."""
    n = _conv(C, w)
    cin = w
    for planes, stride in ((w, 1), (2 * w, 2), (4 * w, 2), (8 * w, 2)):
        for s in (stride, 1):
            n += 2 * cin + _conv(cin, planes) + 2 * planes + _conv(planes, planes)
            n += _conv(cin, planes, 1) if (s != 1 or cin != planes) else 0
            cin = planes
    return n + 2 * cin + cin * K + K


def _wrn_count(depth, k, K, C=3):
    n_blocks = (depth - 4) // 6
    n, cin = _conv(C, 16), 16
    for out in (16 * k, 32 * k, 64 * k):
        for _ in range(n_blocks):
            n += 2 * cin + _conv(cin, out) + 2 * out + _conv(out, out) + (_conv(cin, out, 1) if cin != out else 0)
            cin = out
    return n + 2 * cin + cin * K + K


def _resnet34_count(K, C=3, w=64):
    n, cin = _conv(C, w) + 2 * w, w
    for mult, blocks, stride in ((1, 3, 1), (2, 4, 2), (4, 6, 2), (8, 3, 2)):
        out = mult * w
        for j in range(blocks):
            s = stride if j == 0 else 1
            n += _conv(cin, out) + 2 * out + _conv(out, out) + 2 * out
            n += _conv(cin, out, 1) + 2 * out if (s != 1 or cin != out) else 0
            cin = out
    return n + cin * K + K


def test_reference_parameter_counts_by_formula():
    # the formulas reproduce the published counts: WRN-28-10 36,479,194 (TRADES / RobustBench),
    # ResNet-34 CIFAR 21,282,122 (kuangliu/pytorch-cifar); PreAct ResNet-18 (Wong et al. 2020, no BN in the
    # shortcut) is 11,172,170 — 11,173,962 is the *standard* ResNet-18 with BN in its 3 projection shortcuts
    # (+ 2·(128+256+512) = 1,792)
    assert _wrn_count(28, 10, 10) == 36_479_194
    assert _resnet34_count(10) == 21_282_122
    assert _preact18_count(10) + 2 * (128 + 256 + 512) == 11_173_962
    cases = [("preact-resnet18", 10, None, _preact18_count(10)),
             ("preact-resnet18-gn", 10, None, _preact18_count(10)),
             ("preact-resnet18-gn", 100, 16, _preact18_count(100, w=16)),
             ("preact-resnet18", 10, 8, _preact18_count(10, w=8)),
             ("wrn-28-10", 10, None, _wrn_count(28, 10, 10)),
             ("resnet34", 10, None, _resnet34_count(10)),
             ("resnet34", 100, None, _resnet34_count(100)),
             ("resnet34", 10, 4, _resnet34_count(10, w=4))]
    for name, K, w, expected in cases:
        net = models.build_model(name, num_classes=K, width=w)
        assert sum(p.numel() for p in net.parameters()) == expected, (name, K, w)


def test_groupnorm_variant_has_no_batchnorm_and_groups_of_the_reference():
    net = models.build_model("preact-resnet18-gn")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    gns = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(gns) == 17 and {m.num_groups for m in gns} == {32}
    assert {m.num_groups for m in models.build_model("preact-resnet18-gn", width=16).modules()
            if isinstance(m, torch.nn.GroupNorm)} == {8}
    # GroupNorm: an example's logits do not depend on the rest of the batch, even in training mode
    torch.manual_seed(0)
    small = models.build_model("preact-resnet18-gn", width=4, image_size=8).double().train()
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(small(x)[:1], small(x[:1]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name,width", [("preact-resnet18-gn", 4), ("wrn-28-10", None), ("resnet34", 4),
                                        ("preact-resnet18", 6)])
def test_new_models_tiny_forward_backward(name, width):
    torch.manual_seed(0)
    net = models.build_model(name, num_classes=5, image_size=8, width=width,
                             normalize=((0.5, 0.5, 0.5), (0.2, 0.2, 0.2)))
    x = torch.rand(2, 3, 8, 8)
    out = net(x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_width_bad_inputs():
    with pytest.raises(ConfigError, match="^width "):
        models.build_model("wrn-28-10", width=4)
    with pytest.raises(ConfigError, match="^width "):
        models.build_model("preact-resnet18", width=0)
