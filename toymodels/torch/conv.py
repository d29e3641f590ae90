"""A 2-d convolution with a cheap second derivative, for GradAlign's double backprop (thesis eq. 2.7).

``Conv2d`` is ``torch.nn.Conv2d`` (same parameters, state dict, values and derivatives); inside
:func:`twice_differentiable` its forward goes through a custom autograd function that changes only
the graph a ``create_graph=True`` backward records (outside, it *is* ``nn.Conv2d``: no overhead). PyTorch's generic
``_convolution_double_backward`` computes the weight term of the second derivative as a convolution
of the *batch-transposed* input with the batch-transposed output gradient, i.e. a convolution whose
"kernel" is the whole feature map (32×32 for CIFAR): cuDNN runs it 20–40× slower than a
weight-gradient kernel, and on ResNet-18 it was the largest single cost of a GradAlign step. Here the
input gradient of a differentiable backward is written as

    ∇ₓ = conv_transpose2d(g, W)      (stride, padding, dilation, groups of the forward; output_padding
                                      chosen so that the result has the shape of x),

whose own derivatives are an ordinary convolution (w.r.t. g) and an ordinary weight gradient
(w.r.t. W) — the kernels of a first-order backward. First-order backwards call the same
``aten.convolution_backward`` as ``nn.Conv2d``.

:func:`input_grad_only` marks a backward that is asked for the input gradient alone (GradAlign's
``torch.autograd.grad(loss, x, create_graph=True)``): the weight and bias gradients, which that call
would discard, are then not computed.
"""
from __future__ import annotations

import contextlib
import threading

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Conv2d", "twice_differentiable", "input_grad_only", "use_fast_convs"]

_STATE = threading.local()


@contextlib.contextmanager
def _flag(name: str):
    prev = getattr(_STATE, name, False)
    setattr(_STATE, name, True)
    try:
        yield
    finally:
        setattr(_STATE, name, prev)


def twice_differentiable():
    """Inside: :class:`Conv2d` forwards record the cheap-to-differentiate backward (module docstring).
    Use around the forward pass whose input gradient will be differentiated again."""
    return _flag("double")


def input_grad_only():
    """Inside: backward passes of :class:`Conv2d` return no weight/bias gradients. Use only around
    ``torch.autograd.grad(..., inputs=<the input>)``, which discards them anyway."""
    return _flag("input_only")


def _output_padding(x_shape, g_shape, w_shape, stride, padding, dilation):
    return tuple(int(x_shape[2 + i]) - ((int(g_shape[2 + i]) - 1) * stride[i] - 2 * padding[i]
                                        + dilation[i] * (int(w_shape[2 + i]) - 1) + 1) for i in range(2))


def _autocast_dtype(dev: str):
    """The autocast dtype for device type ``dev`` if autocast is on there, else None (torch >= 2.1)."""
    try:
        on = torch.is_autocast_enabled(dev)
    except TypeError:                                    # torch < 2.4: no device argument
        on = torch.is_autocast_enabled() if dev == "cuda" else torch.is_autocast_cpu_enabled()
    if not on:
        return None
    try:
        return torch.get_autocast_dtype(dev)
    except AttributeError:
        return torch.get_autocast_gpu_dtype() if dev == "cuda" else torch.get_autocast_cpu_dtype()


class _Conv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation, groups):
        dev = x.device.type
        dt = _autocast_dtype(dev)
        if dt is not None:                      # cast as autocast would, and keep the cast tensors
            x, w = x.to(dt), w.to(dt)
            b = None if b is None else b.to(dt)
        ctx.save_for_backward(x, w)
        ctx.conf = (stride, padding, dilation, groups, b is not None)
        with torch.autocast(dev, enabled=False):
            return F.conv2d(x, w, b, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        stride, padding, dilation, groups, has_b = ctx.conf
        g = g.to(x.dtype)
        need_x = ctx.needs_input_grad[0]
        # ctx.needs_input_grad is fixed at the forward; an input-only request is flagged by the caller
        only_x = getattr(_STATE, "input_only", False)
        need_w = ctx.needs_input_grad[1] and not only_x
        need_b = has_b and ctx.needs_input_grad[2] and not only_x
        gx = gw = gb = None
        if need_x and torch.is_grad_enabled():  # create_graph: differentiable, cheap to differentiate
            op = _output_padding(x.shape, g.shape, w.shape, stride, padding, dilation)
            gx = F.conv_transpose2d(g, w, None, stride, padding, op, groups, dilation)
        if (need_x and gx is None) or need_w:
            gi, gw, _ = torch.ops.aten.convolution_backward(
                g, x, w, None, list(stride), list(padding), list(dilation), False, [0, 0], groups,
                [bool(need_x and gx is None), bool(need_w), False])
            gx = gi if gx is None else gx
        if need_b:
            gb = g.sum((0, 2, 3))
        return gx, gw, gb, None, None, None, None


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (zero padding only) whose double-backward graph uses cheap kernels (module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError("toymodels.torch.conv.Conv2d supports numeric zero padding only")

    def forward(self, x):
        if not getattr(_STATE, "double", False):     # first-order use: plain nn.Conv2d, no Python overhead
            return super().forward(x)
        return _Conv2dFn.apply(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def use_fast_convs(module: nn.Module) -> nn.Module:
    """Turn every plain zero-padded ``nn.Conv2d`` inside ``module`` into :class:`Conv2d` and every plain
    ``nn.BatchNorm2d`` into :class:`toymodels.torch.batchnorm.BatchNorm2d`, in place (the same parameters
    and buffers: only the class changes, which adds no state); returns ``module``."""
    from .batchnorm import use_fast_batchnorms

    for m in module.modules():
        if type(m) is nn.Conv2d and m.padding_mode == "zeros" and not isinstance(m.padding, str):
            m.__class__ = Conv2d
    return use_fast_batchnorms(module)
