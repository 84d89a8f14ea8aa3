"""Mona (Yin et al., "5%>100%: Breaking Performance Shackles of Full Fine-Tuning on Visual
Recognition Tasks", CVPR 2025): two multi-cognitive visual adapters per block."""
from mmengine.model import ModuleDict

from ..layers import MonaAdapter
from ..registry import TUNING_METHODS
from .base import TuningMethod, check_option

__all__ = ['Mona']


class _BlockInput:
    """Forward pre-hook of a block: keeps its input stream ``x`` and grid ``hw_shape`` (Swin's
    ``block(x, hw_shape)``) until the attention branch has used them."""

    def __init__(self):
        self.x = self.hw_shape = None

    def __call__(self, module, args):
        self.x, self.hw_shape = args[0], args[1]


class _AfterAttention:
    """Forward hook of the attention branch (output ``a``, added to the block input ``x``):
    ``a -> a + Mona_1(x + a)``, so the block's stream after attention is ``s + Mona_1(s)``."""

    def __init__(self, block_input: _BlockInput, adapter: MonaAdapter):
        self.block_input, self.adapter = block_input, adapter

    def __call__(self, module, args, output):
        x, self.block_input.x = self.block_input.x, None
        return output + self.adapter(x + output, self.block_input.hw_shape)


class _AfterBlock:
    """Forward hook of the block: ``y -> y + Mona_2(y)`` on the stream after the MLP."""

    def __init__(self, block_input: _BlockInput, adapter: MonaAdapter):
        self.block_input, self.adapter = block_input, adapter

    def __call__(self, module, args, output):
        return output + self.adapter(output, self.block_input.hw_shape)


@TUNING_METHODS.register_module()
class Mona(TuningMethod):
    """Two :class:`~mmsidetune.tuners.layers.MonaAdapter` per block, each on the residual stream
    right after a residual add (Mona paper, Fig. 2 / section 3.2; public code
    ``SwinTransformerBlock``: ``x = shortcut + drop_path(attn); x = my_module_1(x, (H, W))`` and
    ``x = identity + drop_path(mlp); x = my_module_2(x, (H, W))``): ``s -> s + delta(s)``, the
    first one also feeding the MLP branch and its identity. Attached by forward hooks on the
    unmodified blocks; ``project2`` zero at init, so the output equals the frozen trunk's.
    Gradients cross the frozen trunk (in-stream). Trainable: the Monas only (the public code
    freezes the output norms too).

    Parameters per block of width ``d`` (``h = 64``): ``2 (133 d + 9728)``. Swin-B 3,667,456
    (V-PETL Bench / Mona paper: 4.16 M), Swin-L 5,267,712 (5.08 M): docs/methods/mona.md on the
    difference.

    Families: Swin. ResNet does not apply (one convolutional residual branch per block, no
    attention/MLP pair and no token stream for Mona's LayerNorm); ViT does not apply (mmseg's
    stream carries a class token that Mona's grid convolutions have no place for, and its encoder
    layer is not given the patch grid).

    Args:
        hidden_dims (int): Mona's bottleneck width. Defaults to 64.
        dropout (float): dropout before ``project2``. Defaults to 0.1.
        zero_init (bool): ``project2`` zero at init (False: the public code's truncated normal).

    Raises:
        ValueError: when attached to a family it does not apply to, or to blocks with
            ``with_cp=True`` (checkpoint's recompute would bypass the block's input hook).
    """

    name = 'mona'
    trains_output_norms = False
    not_for = dict(
        resnet='a ResNet block has one convolutional residual branch, not the attention/MLP pair '
        'Mona sits after, and no token stream for its LayerNorm',
        vit="mmseg's ViT stream carries a class token that Mona's grid convolutions have no "
        'place for, and its encoder layers are not given the patch grid')

    def __init__(self, hidden_dims: int = 64, dropout: float = 0.1, zero_init: bool = True):
        super().__init__()
        check_option('Mona', 'hidden_dims', hidden_dims, integer=True)
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f'Mona: dropout must be a number in [0, 1), got {dropout!r}')
        self.adapter_args = dict(hidden_dims=hidden_dims, dropout=dropout, zero_init=zero_init)

    def attach(self, family) -> None:
        super().attach(family)
        if any(getattr(b.module, 'with_cp', False) for b in family.blocks()):
            raise ValueError('Mona: with_cp=True is not supported: checkpoint re-runs the block '
                             'without its input hook; remove with_cp from the backbone config')

        def make(block):
            layers = ModuleDict({name: MonaAdapter(block.width, **self.adapter_args)
                                 for name in ('attn', 'mlp')})
            block_input = _BlockInput()
            self.keep(block.module.register_forward_pre_hook(block_input))
            self.keep(block.branches['attn'].register_forward_hook(
                _AfterAttention(block_input, layers['attn'])))
            self.keep(block.module.register_forward_hook(_AfterBlock(block_input, layers['mlp'])))
            return layers

        self.per_block(family, make)
