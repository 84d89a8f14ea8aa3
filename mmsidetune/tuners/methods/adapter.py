"""Adapter (Houlsby et al., "Parameter-Efficient Transfer Learning for NLP", ICML 2019): a serial
bottleneck adapter after each branch of every block, inside the residual stream."""
from ..layers import BottleneckAdapter, add_serial_adapter
from ..registry import TUNING_METHODS
from .base import ACTIVATIONS, TuningMethod, check_option

__all__ = ['Adapter']


@TUNING_METHODS.register_module()
class Adapter(TuningMethod):
    """Serial bottleneck adapters: each branch output ``u`` (before its residual add) becomes
    ``u + up(act(down(u)))`` (:class:`~mmsidetune.tuners.layers.BottleneckAdapter`, ``up`` zero
    at init, so the backbone's output is unchanged at initialisation).

    Placement per family (docs/backbones.md): Swin and ViT after attention and after MLP, ResNet
    after each residual branch. Gradients reach an adapter through the frozen blocks after it, so
    backward stores the trunk's activations. Trainable: the adapters and the output norms.

    Parameters per adapter of width ``d``: ``2 d h + h + d``. Swin-B with ``h = 64``: 3,107,328
    plus output norms 3,840 = 3,111,168 (3.11 M, E3VA paper Table 1's Adapter row); Swin-L:
    4,665,216 (4.66 M).

    Args:
        hidden_dims (int): bottleneck width ``h``. Defaults to 64.
        act (str): ``'GELU'`` (default) or ``'ReLU'`` (M2IST's adapter baseline).
    """

    name = 'adapter'

    def __init__(self, hidden_dims: int = 64, act: str = 'GELU'):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f'Adapter: act must be one of {sorted(ACTIVATIONS)}, got {act!r}')
        check_option(type(self).__name__, 'hidden_dims', hidden_dims, integer=True)
        self.hidden_dims, self.act = hidden_dims, act

    def make_adapter(self, block):
        return BottleneckAdapter(block.width, self.hidden_dims, act_layer=ACTIVATIONS[self.act],
                                 channel_dim=block.channel_dim)

    def attach(self, family) -> None:
        super().attach(family)
        from mmengine.model import ModuleDict

        def make(block):
            layers = ModuleDict({name: self.make_adapter(block) for name in block.branches})
            for name, module in block.branches.items():
                self.keep(add_serial_adapter(module, layers[name]))
            return layers

        self.per_block(family, make)
