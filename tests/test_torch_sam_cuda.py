"""toymodels.torch.sam's mixed-precision paths on a GPU (skipped without CUDA): float16 autocast with a
``GradScaler("cuda")`` through ``first_step(scaler=)`` / ``scaler.step(sam)``, and bfloat16 autocast
without a scaler, each against float32/float64 on the same device. The same checks run on the CPU in
test_torch_sam_amp.py; the helpers are shared (device is an argument). Deterministic; no Monte Carlo."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from test_torch_sam_amp import DLN, U_BF16, _cnn, _data, _mlp, quarter_mse  # noqa: E402
from toymodels.torch.sam import SAM, sam_update  # noqa: E402

F = nn.functional
U_FP16 = 2.0 ** -11     # float16 unit roundoff (11 significant bits)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def scaled_loop_vs_plain(dev: str, amp_dtype) -> tuple[float, float]:
    """(max |w_scaled − w_plain|, max |w_plain − w_0|) after 10 SAM-SGD steps of a float64 DLN: the user's
    loop under ``autocast(amp_dtype)`` with a GradScaler (scale 2^16) and ``scaler.step(sam)``, vs
    ``sam_update`` without AMP. The DLN's ops are elementwise (autocast leaves them in float64) and the
    scale is a power of two: the two agree to rounding."""
    X, y = (t.to(dev) for t in _data())
    plain, scaled = DLN(np.full(8, 0.7), np.full(8, 0.4)).to(dev), DLN(np.full(8, 0.7), np.full(8, 0.4)).to(dev)
    op = SAM(plain.parameters(), torch.optim.SGD, rho=0.1, lr=0.05, momentum=0.9)
    os_ = SAM(scaled.parameters(), torch.optim.SGD, rho=0.1, lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler(dev, init_scale=2.0 ** 16, growth_interval=1000)
    for _ in range(10):
        sam_update(plain, op, quarter_mse, X, y)
        with torch.autocast(dev, dtype=amp_dtype):
            loss = quarter_mse(scaled(X), y)
        scaler.scale(loss).backward()
        os_.first_step(zero_grad=True, scaler=scaler)
        with torch.autocast(dev, dtype=amp_dtype):
            loss2 = quarter_mse(scaled(X), y)
        scaler.scale(loss2).backward()
        scaler.step(os_)
        scaler.update()
        os_.zero_grad()
    diff = max(float((a - b).detach().abs().max()) for a, b in zip(plain.parameters(), scaled.parameters()))
    return diff, float((plain.wp.detach() - 0.7).abs().max())


def rel_update_error(dev: str, arch: str, amp_dtype, *, scaler: bool, seed: int = 0) -> tuple[float, float]:
    """(‖Δw_amp − Δw_f32‖/‖Δw_f32‖, ‖Δw_sgd − Δw_f32‖/‖Δw_f32‖) of one SAM-SGD step (ρ = 0.5) on ``dev``."""
    def step(rho, amp):
        torch.manual_seed(0)
        model = (_mlp() if arch == "mlp" else _cnn()).to(dev)
        g = torch.Generator().manual_seed(seed)
        x = torch.randn((64, 20) if arch == "mlp" else (32, 3, 6, 6), generator=g).to(dev)
        yy = torch.randint(0, 5, (len(x),), generator=g).to(dev)
        w0 = [p.detach().clone() for p in model.parameters()]
        opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=0.5)
        if amp and scaler:
            sam_update(model, opt, F.cross_entropy, x, yy, autocast_dtype=amp_dtype,
                       scaler=torch.amp.GradScaler(dev, init_scale=2.0 ** 10))
        else:
            sam_update(model, opt, F.cross_entropy, x, yy, autocast_dtype=amp_dtype if amp else None)
        return torch.cat([(p.detach() - w).flatten() for p, w in zip(model.parameters(), w0)])

    d32, damp, sgd = step(0.5, False), step(0.5, True), step(0.0, False)
    return float((damp - d32).norm() / d32.norm()), float((sgd - d32).norm() / d32.norm())


@cuda
@pytest.mark.parametrize("amp_dtype", ["float16", "bfloat16"])
def test_scaled_user_loop_on_cuda_equals_the_unscaled_update(amp_dtype):
    diff, moved = scaled_loop_vs_plain("cuda", getattr(torch, amp_dtype))
    assert diff <= 1e-14 and moved > 1e-3


@cuda
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("amp_dtype,scaler", [("bfloat16", False), ("float16", True)])
def test_amp_sam_step_on_cuda_is_close_to_float32(arch, amp_dtype, scaler):
    """Tolerance 8u of the autocast dtype (the derivation of test_torch_sam_amp's bf16 check; u = 2^-8
    for bfloat16, 2^-11 for float16). float32 matmuls without TF32 (torch's default for matmul; cuDNN
    convolutions may use TF32: disabled here)."""
    u = U_BF16 if amp_dtype == "bfloat16" else U_FP16
    prev = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        err, sam_vs_sgd = rel_update_error("cuda", arch, getattr(torch, amp_dtype), scaler=scaler)
    finally:
        torch.backends.cudnn.allow_tf32 = prev
    assert err <= 8 * u and sam_vs_sgd > 16 * u
