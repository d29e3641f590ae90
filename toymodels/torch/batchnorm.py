"""Training-mode batch normalization with a cheap second derivative, for GradAlign's double backprop.

``BatchNorm2d`` is ``torch.nn.BatchNorm2d`` (same parameters, buffers, state dict, values and first
derivatives). Inside :func:`toymodels.torch.conv.twice_differentiable`, in training mode, on CPU
float32/float64 tensors without autocast, its backward is recorded as :class:`_BNBackwardFn`, whose
own backward (the second derivative) is two fused passes over memory (:mod:`._kernels`, numba):
one for five per-channel sums, one writing both outputs. PyTorch's generic
``batchnorm_double_backward`` composes about thirty broadcast element-wise operations; on PreAct
ResNet-18 (batch 128, one CPU thread) it took 20 % of a GradAlign step, 40× the time of a BN backward.
Elsewhere (eval mode, cuda, autocast, first-order use) the module *is* ``nn.BatchNorm2d``.

The second derivative, per channel, with N elements, μ, s = 1/√(σ² + ε) the batch statistics,
x_c = x − μ, γ the weight, ḡ = mean(g_y), c = mean(g_y x_c), and the first derivative

    g_x = γ s (g_y − ḡ) − γ s³ c x_c,   g_γ = N s c,   g_β = N ḡ,

given the upstream gradients v (of g_x), G_γ, G_β; with v̄ = mean(v), B = Σ v x_c, A = Σ v g_y − N v̄ ḡ:

    ∂/∂g_y = γ s (v − v̄) + (G_γ s − γ s³ B/N) x_c + G_β
    ∂/∂x   = (3γ s⁵ c B/N − γ s³ A/N − G_γ s³ c) x_c + (G_γ s − γ s³ B/N)(g_y − ḡ) − γ s³ c (v − v̄)
    ∂/∂γ   = s A − s³ c B.

:func:`double_backward_reference` evaluates these with torch operations (the test oracle, checked
against ``torch.autograd.gradgradcheck`` and against PyTorch's own double backward).
"""
from __future__ import annotations

import torch
from torch import nn

from . import _kernels
from .conv import _STATE, _autocast_dtype

__all__ = ["BatchNorm2d", "use_fast_batchnorms", "double_backward_reference"]


def _coefficients(sums: torch.Tensor, n: int, w: torch.Tensor, s: torch.Tensor, gw: torch.Tensor,
                  gb: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-channel coefficients of the second derivative (module docstring) from the sums
    (Σ g_y, Σ g_y x_c, Σ v, Σ v g_y, Σ v x_c), each of shape (C,), in float64."""
    sg, sgx, sv, svg, svx = sums
    mg, c, mv = sg / n, sgx / n, sv / n
    a = svg - n * mv * mg
    s3 = s ** 3
    k_xc = gw * s - w * s3 * svx / n                       # of x_c in ∂/∂g_y and of (g_y − ḡ) in ∂/∂x
    x_xc = 3 * w * s ** 5 * c * svx / n - w * s3 * a / n - gw * s3 * c
    x_v = -w * s3 * c
    x_0 = -k_xc * mg - x_v * mv                            # (g_y − ḡ), (v − v̄) centred
    g_v = w * s
    g_0 = gb - w * s * mv
    d_w = s * a - s3 * c * svx
    return k_xc, x_xc, x_v, x_0, g_v, g_0, d_w


def double_backward_reference(gy, x, w, mean, invstd, v, gw, gb):
    """(∂/∂g_y, ∂/∂x, ∂/∂γ) of ⟨v, g_x⟩ + ⟨G_γ, g_γ⟩ + ⟨G_β, g_β⟩ (module docstring), torch operations,
    float64 internally; x, g_y, v of shape (B, C, *), the rest (C,)."""
    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    f = torch.float64
    xc = x.to(f) - mean.to(f).view(shape)
    g64, v64 = gy.to(f), v.to(f)
    n = x.numel() // x.shape[1]
    sums = torch.stack([g64.sum(dims), (g64 * xc).sum(dims), v64.sum(dims), (v64 * g64).sum(dims),
                        (v64 * xc).sum(dims)])
    k_xc, x_xc, x_v, x_0, g_v, g_0, d_w = _coefficients(sums, n, w.to(f), invstd.to(f), gw.to(f), gb.to(f))
    col = (lambda t: t.view(shape))
    dgy = col(g_v) * v64 + col(k_xc) * xc + col(g_0)
    dx = col(x_xc) * xc + col(k_xc) * g64 + col(x_v) * v64 + col(x_0)
    return dgy.to(gy.dtype), dx.to(x.dtype), d_w.to(w.dtype)


def _as3(t: torch.Tensor):
    return t.detach().contiguous().view(t.shape[0], t.shape[1], -1).numpy()


def _double_backward(gy, x, w, mean, invstd, v, gw, gb):
    """:func:`double_backward_reference` by the two numba passes of :mod:`._kernels`."""
    x3, g3, v3 = _as3(x), _as3(gy), _as3(v)
    mu = mean.detach().to(torch.float64).numpy()
    sums = torch.from_numpy(_kernels.channel_sums(x3, g3, v3, mu))
    f = torch.float64
    n = x.numel() // x.shape[1]
    k_xc, x_xc, x_v, x_0, g_v, g_0, d_w = _coefficients(sums, n, w.detach().to(f), invstd.detach().to(f),
                                                        gw.detach().to(f), gb.detach().to(f))
    coef = torch.stack([k_xc, x_xc, x_v, x_0, g_v, g_0]).numpy()
    dgy, dx = torch.empty_like(x, memory_format=torch.contiguous_format), torch.empty_like(x, memory_format=torch.contiguous_format)
    _kernels.combine(x3, g3, v3, mu, coef, dx.view(x3.shape).numpy(), dgy.view(x3.shape).numpy())
    return dgy, dx, d_w.to(w.dtype)


class _BNBackwardFn(torch.autograd.Function):
    """(g_x, g_γ, g_β) of training-mode BN as a function of (g_y, x, γ); the batch statistics
    (mean, invstd) are passed as constants, their dependence on x is in the second derivative."""

    @staticmethod
    def forward(ctx, gy, x, w, mean, invstd, eps):
        ctx.save_for_backward(gy, x, w, mean, invstd)
        return torch.ops.aten.native_batch_norm_backward(gy, x, w, None, None, mean, invstd, True, eps,
                                                         [True, True, True])

    @staticmethod
    def backward(ctx, v, gw, gb):
        gy, x, w, mean, invstd = ctx.saved_tensors
        dgy, dx, dw = _double_backward(gy, x, w, mean, invstd, v, gw, gb)
        return dgy, dx, dw, None, None, None


class _BNFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, running_mean, running_var, momentum, eps):
        out, mean, invstd = torch.native_batch_norm(x, w, b, running_mean, running_var, True, momentum, eps)
        ctx.save_for_backward(x, w, mean, invstd)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx, gy):
        x, w, mean, invstd = ctx.saved_tensors
        if torch.is_grad_enabled():                 # create_graph: record the cheap-to-differentiate backward
            gx, gw, gb = _BNBackwardFn.apply(gy, x, w, mean, invstd, ctx.eps)
        else:
            gx, gw, gb = torch.ops.aten.native_batch_norm_backward(
                gy, x, w, None, None, mean, invstd, True, ctx.eps,
                [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]])
        return gx, gw, gb, None, None, None, None


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode double backward on the CPU is fused (module docstring)."""

    def _fast(self, x: torch.Tensor) -> bool:
        return (getattr(_STATE, "double", False) and self.training and self.affine and x.device.type == "cpu"
                and x.dtype in (torch.float32, torch.float64) and self.momentum is not None
                and self.weight.dtype == x.dtype and _autocast_dtype("cpu") is None)

    def forward(self, x):
        if not self._fast(x):
            return super().forward(x)
        self._check_input_dim(x)
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
        return _BNFn.apply(x, self.weight, self.bias, self.running_mean, self.running_var, self.momentum, self.eps)


def use_fast_batchnorms(module: nn.Module) -> nn.Module:
    """Turn every plain ``nn.BatchNorm2d`` inside ``module`` into :class:`BatchNorm2d`, in place (the same
    parameters and buffers: only the class changes); returns ``module``."""
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = BatchNorm2d
    return module
