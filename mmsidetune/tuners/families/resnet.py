"""The ResNet family: mmdet's ``ResNet`` / ``ResNetV1d`` and mmseg's ``ResNet`` / ``ResNetV1c`` /
``ResNetV1d`` (``Bottleneck`` and ``BasicBlock``).

A block computes ``x -> relu(f + s(x))`` with the residual branch
``f = norm3(conv3(relu(norm2(conv2(relu(norm1(conv1(x))))))))`` (``norm2(conv2(...))`` for a
``BasicBlock``; the last ``after_conv3`` plugin's output when there are plugins) and the shortcut
``s``: the identity, or ``downsample`` (a frozen 1x1 convolution and norm, average pooling first
with ``avg_down``) in the first block of a stage. The one branch ``'res'`` is read at the last
norm (or plugin); mmdet/mmseg add the shortcut to that tensor *in place* (``out += identity``), so
E3VA's tap copies it. There are no linear layers and no MLP (LoRA and AdaptFormer do not apply).

E3VA's highway crosses ResNet's non-linear downsampling (the first block of a stage, which
changes width and resolution and ends with a ReLU) through the block's own sum with the highway
state in place of the block input, ``h' = relu((f + s(h)) + A(f))`` with the frozen projection
``s`` (docs/e3va_resnet.md).
"""
from typing import List, Tuple

import torch
import torch.nn as nn

from .base import BackboneFamily, BlockSpec, call_in_dtype, register_family, upstream_class

__all__ = ['ResNetFamily', 'masked_relu', 'frozen_affine']


def _resnet_classes() -> Tuple[tuple, tuple, tuple]:
    """(backbone classes, Bottleneck classes, BasicBlock classes) of mmdet and mmseg."""
    from mmdet.models.backbones.resnet import BasicBlock as DetBasic
    from mmdet.models.backbones.resnet import Bottleneck as DetBottleneck
    from mmdet.models.backbones.resnet import ResNet as DetResNet
    from mmdet.models.backbones.resnet import ResNetV1d as DetResNetV1d
    backbones, bottlenecks, basics = [DetResNet, DetResNetV1d], [DetBottleneck], [DetBasic]
    try:
        from mmseg.models.backbones.resnet import BasicBlock as SegBasic
        from mmseg.models.backbones.resnet import Bottleneck as SegBottleneck
        from mmseg.models.backbones.resnet import ResNet as SegResNet
        from mmseg.models.backbones.resnet import ResNetV1c, ResNetV1d
        backbones += [SegResNet, ResNetV1c, ResNetV1d]
        bottlenecks.append(SegBottleneck)
        basics.append(SegBasic)
    except ImportError:  # mmseg is optional for mmdet users
        pass
    return tuple(backbones), tuple(bottlenecks), tuple(basics)


class _MaskedReLU(torch.autograd.Function):
    """``relu(x)`` (in place on ``x``, a fresh sum) that keeps a bool mask for backward
    (1 byte per element) instead of the float output (4 bytes)."""

    @staticmethod
    def forward(ctx, x):
        y = torch.relu_(x)
        ctx.mark_dirty(x)
        ctx.save_for_backward(y > 0)
        return y

    @staticmethod
    def backward(ctx, grad):
        mask, = ctx.saved_tensors
        return grad * mask


def masked_relu(x: torch.Tensor) -> torch.Tensor:
    """``torch.relu(x)``, computed in place on ``x`` (which must be a temporary nobody else
    reads), keeping only ``x > 0`` as a bool mask for backward. Values are bitwise those of
    ``nn.ReLU``; the gradient is ``grad * (relu(x) > 0)``, as PyTorch's.

    Shapes: any -> the same."""
    if not torch.is_grad_enabled() or not x.requires_grad:
        return torch.relu(x)
    return _MaskedReLU.apply(x)


#: Modules whose eval-mode forward is an affine map of the input.
_AFFINE = (nn.Conv2d, nn.modules.batchnorm._BatchNorm, nn.AvgPool2d, nn.Sequential, nn.Identity)


class _FrozenAffine(torch.autograd.Function):
    """``module(x)`` for a frozen affine ``module`` (convolution, eval-mode norm, average pooling)
    that keeps nothing for backward: the input gradient ``A^T g`` of an affine map does not
    depend on ``x`` and is taken from ``module`` applied to zeros."""

    @staticmethod
    def forward(ctx, x, module):
        ctx.module = module
        ctx.shape, ctx.dtype = x.shape, x.dtype
        with torch.no_grad():
            return call_in_dtype(module, x.dtype, x)

    @staticmethod
    def backward(ctx, grad):
        with torch.enable_grad():
            zero = torch.zeros(ctx.shape, dtype=ctx.dtype, device=grad.device,
                               requires_grad=True)
            out = call_in_dtype(ctx.module, ctx.dtype, zero)
            grad_x, = torch.autograd.grad(out, zero, grad)
        return grad_x, None


def frozen_affine(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` (in ``x``'s dtype) for a frozen affine module in eval mode (ResNet's
    projection shortcut), keeping nothing for backward; the values are bitwise ``module(x)``'s.

    Shapes: as ``module``, e.g. ``(B, C, H, W)`` -> ``(B, C', H / 2, W / 2)``.

    Raises:
        TypeError: if ``module`` holds a layer that is not affine (the accepted types are listed).
        RuntimeError: if ``module`` is in training mode.
    """
    bad = [type(m).__name__ for m in module.modules() if not isinstance(m, _AFFINE)]
    if bad:
        raise TypeError(f'frozen_affine: {type(module).__name__} holds layers that are not affine '
                        f'({bad}); accepted: {[c.__name__ for c in _AFFINE]}')
    if module.training:
        raise RuntimeError(f'frozen_affine: {type(module).__name__} is in training mode (batch '
                           'statistics are not a fixed affine map); the frozen trunk must be in '
                           'eval mode: call .train() or .eval() on the TunedBackbone (mmengine\'s '
                           'loops do)')
    if not torch.is_grad_enabled() or not x.requires_grad:
        return call_in_dtype(module, x.dtype, x)
    return _FrozenAffine.apply(x, module)


@register_family
class ResNetFamily(BackboneFamily):
    """mmdet/mmseg ``ResNet`` (and ``ResNetV1c``/``ResNetV1d``): stages ``layer1..layer4`` of
    ``Bottleneck`` or ``BasicBlock``; no output norms.

    Shapes: input ``(B, 3, H, W)`` -> outputs ``(B, C_i, H / s_i, W / s_i)`` for ``i`` in
    ``out_indices``, ``C_i = base_channels * 2**i * expansion`` (256, 512, 1024, 2048 for
    ResNet-50), ``s_i = 4, 8, 16, 32`` (less with dilations).

    Raises:
        TypeError: for a block that is neither a ``Bottleneck`` nor a ``BasicBlock`` of
            mmdet/mmseg (ResNeXt, Res2Net ... are not part of this family).
    """

    name = 'resnet'
    upstream_types = ('ResNet', 'mmdet.ResNet', 'mmseg.ResNet', 'ResNetV1c', 'ResNetV1d',
                      'mmdet.ResNetV1d', 'mmseg.ResNetV1c', 'mmseg.ResNetV1d')

    @classmethod
    def matches(cls, module: nn.Module) -> bool:
        return upstream_class(module) in _resnet_classes()[0]

    def build_stages(self) -> List[List[BlockSpec]]:
        _, bottlenecks, basics = _resnet_classes()
        stages = []
        for name in self.module.res_layers:
            blocks = []
            for block in getattr(self.module, name):
                if isinstance(block, bottlenecks):
                    res, width = block.norm3, block.conv3.out_channels
                    plugins = getattr(block, 'after_conv3_plugin_names', None) or []
                    if block.with_plugins and plugins:
                        res = getattr(block, plugins[-1])  # the branch ends with the last plugin
                elif isinstance(block, basics):
                    res, width = block.norm2, block.conv2.out_channels
                else:
                    raise TypeError(f'{upstream_class(self.module).__name__}.{name}: block '
                                    f'{type(block).__name__} is not an mmdet/mmseg Bottleneck or '
                                    'BasicBlock; the ResNet family cannot read its residual branch')
                blocks.append(BlockSpec(module=block, width=width, branches=dict(res=res),
                                        shortcut=block.downsample, channel_dim=1,
                                        clone_taps=True))
            stages.append(blocks)
        return stages

    def out_stages(self) -> List[int]:
        return sorted(self.module.out_indices)

    # ------------------------------------------------------------- highway protocol
    def stem(self, x):
        """conv1/norm1/relu (or the deep stem) and the max pooling, as the upstream forward."""
        m = self.module
        if m.deep_stem:
            x = m.stem(x)
        else:
            x = m.conv1(x)
            x = m.norm1(x)
            x = m.relu(x)
        return m.maxpool(x), None

    def run_stage(self, i, x, ctx):
        x = getattr(self.module, self.module.res_layers[i])(x)
        return x, None, x, None

    def stage_output(self, i, h, ctx):
        return h if i in self.module.out_indices else None

    def highway_step(self, block: BlockSpec, h: torch.Tensor, taps, update) -> torch.Tensor:
        """``relu((f + s(h)) + update)``: the block's own sum with the highway state ``h`` in
        place of its input (mmdet's ``out = f; out += identity; relu``, the same operation
        order, so ``h`` stays bitwise the trunk's stream while ``update`` is zero). ``s`` is the
        frozen projection shortcut (run in ``h``'s dtype, keeping nothing for backward) or the
        identity."""
        s = h if block.shortcut is None else frozen_affine(block.shortcut, h)
        out = taps['res'] + s
        if update is not None:
            out = out + update
        return masked_relu(out)
