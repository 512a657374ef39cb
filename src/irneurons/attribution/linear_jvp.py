"""The forward-mode linear trick: ``nn.Linear`` with a JVP rule that skips the (zero) weight tangent."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as Fn
from torch import nn


class _LinearJVP(torch.autograd.Function):
    """y = x Wᵀ + b with a forward-mode rule that skips the weight tangent.

    Stock ``addmm`` forward-AD also multiplies the primal input by the (zero) weight tangent, which
    doubles the matmul cost of a dual forward; weights never move along the NIG path.
    """

    @staticmethod
    def forward(x, weight, bias):
        return Fn.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.weight = inputs[1]
        ctx.x_dtype, ctx.out_dtype = inputs[0].dtype, output.dtype

    @staticmethod
    def backward(ctx, grad):
        w = ctx.weight.to(grad.dtype)
        return (grad @ w).to(ctx.x_dtype), None, None

    @staticmethod
    def jvp(ctx, x_t, weight_t, bias_t):
        return Fn.linear(x_t.to(ctx.out_dtype), ctx.weight.to(ctx.out_dtype))


@contextlib.contextmanager
def fast_linear_jvp(model: nn.Module):
    """Route every ``nn.Linear`` of ``model`` through :class:`_LinearJVP` (weights must not need grad)."""
    patched = [m for m in model.modules() if type(m) is nn.Linear]
    for m in patched:
        m.forward = (lambda mod: (lambda x: _LinearJVP.apply(x, mod.weight, mod.bias)))(m)
    try:
        yield
    finally:
        for m in patched:
            m.__dict__.pop("forward", None)
