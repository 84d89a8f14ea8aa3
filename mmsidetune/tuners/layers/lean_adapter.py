"""The dual low-rank adapter with a lean backward: only its input is kept for backward.

A :class:`~mmsidetune.tuners.layers.DualLowRankAdapter` computes ``y = up(act(down(x)))`` with
``down = P_d K_d Q_d (+ b_d)`` and ``up = P_u K_u Q_u (+ b_u)`` (rank ``B * r`` products, see
:mod:`.dual_lowrank`). Run as plain modules, autograd keeps per token the input ``x`` (``d``
floats), the ``d/2``-wide pre-activation and activation, and four ``B * r``-wide projections.
Everything but ``x`` is reached from ``x`` through rank-``B * r`` matmuls, so
:func:`lean_dual_lowrank_adapter` keeps ``x`` alone and recomputes the rest in backward, for
about the cost of the adapter's own forward (``3 * B * r * (d + d/2)`` multiply-adds per token;
a Swin block costs ``~12 d^2``). This is E3VA's memory argument (arXiv 2306.09729, section 3)
carried to its end: see docs/e3va.md, "Memory options".

``save_dtype`` (e.g. ``torch.bfloat16``) keeps ``x`` in a smaller dtype. The forward still uses
the exact ``x``; backward then also keeps the pre-``K`` projection ``Q_d x`` (``B * r`` floats
per token) so that every gradient except ``Q_d``'s is exact, and ``Q_d``'s weight gradient is
``(dL/d(Q_d x))^T x`` with the rounded ``x``. When ``x`` already has ``save_dtype`` (e.g. a bf16
trunk's taps) nothing is rounded and nothing extra is kept.

Bytes kept per token: ``d * itemsize(x or save_dtype)``, plus ``B * r * itemsize(compute)`` when
``x`` is rounded. Gradients equal the plain module composition (tested in float64).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .dual_lowrank import DualLowRankAdapter, DualLowRankLinear

__all__ = ['lean_dual_lowrank_adapter', 'LeanDualLowRankAdapterFunction']


def _q_weight(layer_q: torch.Tensor) -> torch.Tensor:
    """``Q`` (B, r, C_in) -> the stacked (B*r, C_in) matrix used by ``F.linear``."""
    return layer_q.reshape(-1, layer_q.shape[-1])


def _p_weight(layer_p: torch.Tensor) -> torch.Tensor:
    """``P`` (B, C_out, r) -> (C_out, B*r), branches side by side (their sum is one matmul)."""
    return layer_p.permute(1, 0, 2).reshape(layer_p.shape[1], -1)


def _through_k(z: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """(N, B*r) -> (N, B*r): each branch's ``r`` values through its own ``K`` (B, r, r)."""
    return torch.einsum('nbs,brs->nbr', z.unflatten(-1, k.shape[:2]), k).flatten(-2)


def _k_backward(grad: torch.Tensor, z_in: torch.Tensor, k: torch.Tensor):
    """Gradients of :func:`_through_k` w.r.t. its input (N, B*r) and ``K`` (B, r, r)."""
    grad = grad.unflatten(-1, k.shape[:2])
    grad_k = torch.einsum('nbr,nbs->brs', grad, z_in.unflatten(-1, k.shape[:2]))
    grad_in = torch.einsum('nbr,brs->nbs', grad, k).flatten(-2)
    return grad_in, grad_k


def _p_grad(grad_w: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """(C_out, B*r) gradient of :func:`_p_weight`'s output -> gradient of ``P`` (B, C_out, r)."""
    return grad_w.reshape(p.shape[1], p.shape[0], p.shape[2]).permute(1, 0, 2)


class LeanDualLowRankAdapterFunction(torch.autograd.Function):
    """``y = up(act(down(x)))`` keeping only ``x`` (and, for a rounded ``x``, ``Q_d x``).

    Inputs (tensors are the adapter's own parameters): ``x`` (N, d_in) in any floating dtype
    (computed in the parameters' dtype), ``Q_d, K_d, P_d, b_d, Q_u, K_u, P_u, b_u`` (biases may be
    None), ``act`` (an ``nn.Module``, e.g. ``nn.GELU()``), ``save_dtype`` (``torch.dtype`` or
    None). Output (N, d_out) in the parameters' dtype.
    """

    @staticmethod
    def forward(ctx, x, q_d, k_d, p_d, b_d, q_u, k_u, p_u, b_u, act, save_dtype):
        xc = x.to(q_d.dtype)
        zq = F.linear(xc, _q_weight(q_d))  # (N, B*r) = Q_d x, before K
        hidden = act(F.linear(_through_k(zq, k_d), _p_weight(p_d), b_d))  # (N, d/2)
        z_up = _through_k(F.linear(hidden, _q_weight(q_u)), k_u)
        y = F.linear(z_up, _p_weight(p_u), b_u)
        rounded = save_dtype is not None and save_dtype != x.dtype
        if rounded:
            ctx.save_for_backward(x.to(save_dtype), zq, q_d, k_d, p_d, b_d, q_u, k_u, p_u, b_u)
        else:
            ctx.save_for_backward(x, None, q_d, k_d, p_d, b_d, q_u, k_u, p_u, b_u)
        ctx.act = act
        ctx.x_dtype = x.dtype
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, zq, q_d, k_d, p_d, b_d, q_u, k_u, p_u, b_u = ctx.saved_tensors
        xc = x.to(q_d.dtype)
        if zq is None:
            zq = F.linear(xc, _q_weight(q_d))
        z_down = _through_k(zq, k_d)
        pre = F.linear(z_down, _p_weight(p_d), b_d)  # the d/2-wide pre-activation, recomputed
        with torch.enable_grad():
            pre = pre.detach().requires_grad_(True)
            hidden = ctx.act(pre)
        hidden_value = hidden.detach()
        zq_up = F.linear(hidden_value, _q_weight(q_u))
        z_up = _through_k(zq_up, k_u)
        del hidden_value

        # up: y = z_up P_u^T + b_u, z_up = K_u (Q_u hidden)
        grad_y = grad_y.reshape(-1, grad_y.shape[-1]).to(q_d.dtype)
        grad_b_u = grad_y.sum(0) if b_u is not None else None
        grad_p_u = _p_grad(grad_y.t().mm(z_up.reshape(-1, z_up.shape[-1])), p_u)
        grad_zq_up, grad_k_u = _k_backward(grad_y.mm(_p_weight(p_u)), zq_up, k_u)
        grad_q_u = grad_zq_up.t().mm(hidden.detach().reshape(-1, hidden.shape[-1]))
        grad_hidden = grad_zq_up.mm(_q_weight(q_u))
        grad_pre, = torch.autograd.grad(hidden, pre, grad_hidden)
        del hidden, grad_hidden

        # down: pre = z_down P_d^T + b_d, z_down = K_d (Q_d x)
        grad_b_d = grad_pre.sum(0) if b_d is not None else None
        grad_p_d = _p_grad(grad_pre.t().mm(z_down), p_d)
        grad_zq, grad_k_d = _k_backward(grad_pre.mm(_p_weight(p_d)), zq, k_d)
        grad_q_d = grad_zq.t().mm(xc.reshape(-1, xc.shape[-1])).view_as(q_d)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_zq.mm(_q_weight(q_d)).to(ctx.x_dtype)
        return (grad_x, grad_q_d, grad_k_d, grad_p_d, grad_b_d, grad_q_u.view_as(q_u), grad_k_u,
                grad_p_u, grad_b_u, None, None)


def _check_layer(layer: DualLowRankLinear, name: str) -> None:
    if not isinstance(layer, DualLowRankLinear):
        raise TypeError(f'lean_dual_lowrank_adapter: adapter.{name} must be a DualLowRankLinear, '
                        f'got {type(layer).__name__}')


def lean_dual_lowrank_adapter(adapter: DualLowRankAdapter,
                              x: torch.Tensor,
                              save_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``adapter(x)`` with a lean backward (see the module docstring).

    Args:
        adapter: a :class:`DualLowRankAdapter` (its parameters are used, names unchanged).
        x: input (..., d) of any floating dtype; computed in the adapter's dtype.
        save_dtype: dtype ``x`` is kept in for backward (None: as it comes).

    Returns:
        (..., d) in the adapter's dtype; the same values as ``adapter(x.to(dtype))``.

    Raises:
        TypeError: if ``adapter`` is not built from two :class:`DualLowRankLinear` layers.
    """
    _check_layer(adapter.down, 'down')
    _check_layer(adapter.up, 'up')
    if not isinstance(adapter.act, nn.Module):
        raise TypeError('lean_dual_lowrank_adapter: adapter.act must be an nn.Module')
    lead = x.shape[:-1]
    down, up = adapter.down, adapter.up
    y = LeanDualLowRankAdapterFunction.apply(x.reshape(-1, x.shape[-1]), down.Q, down.K, down.P,
                                             down.bias, up.Q, up.K, up.P, up.bias, adapter.act,
                                             save_dtype)
    return y.view(*lead, y.shape[-1])
