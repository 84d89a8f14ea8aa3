"""Adapter baseline (Houlsby et al., ICML 2019) on a frozen Swin trunk; SPEC.md section 1."""
import torch.nn as nn

from ..adapters import BottleneckAdapter
from .serial_adapter_swin import SerialAdapterSwinTransformer
from .tuned_swin import register_tuned_swin

__all__ = ['AdapterSwinTransformer']


@register_tuned_swin('adapter')
class AdapterSwinTransformer(SerialAdapterSwinTransformer):
    """Swin with Houlsby bottleneck adapters, serial, after attention and after MLP.

    Each adapter is ``u + up(GELU(down(u)))`` applied to the branch output ``u`` before the residual
    add (:class:`~mmsidetune.adapters.BottleneckAdapter`, ``up`` zero at init). Takes every argument
    of mmdet's ``SwinTransformer`` plus ``adapter_hidden_dims``.

    Trainable backbone parameters: ``sum over blocks of 2 * (2 d h + h + d)`` plus the output norms
    ``2 * d_i`` for ``i`` in ``out_indices`` (counted, as for E3VA). With ``h = 64``:
    Swin-B 3,107,328 + 3,840 = 3,111,168 (3.11 M, SPEC 3.11 M);
    Swin-L 4,659,456 + 5,760 = 4,665,216 (4.67 M, SPEC 4.66 M).

    Args:
        adapter_hidden_dims (int): Bottleneck width ``h``. Defaults to 64.
        **kwargs: the arguments of mmdet's ``SwinTransformer``.
    """

    def __init__(self, adapter_hidden_dims: int = 64, **kwargs):
        self.adapter_hidden_dims = adapter_hidden_dims
        super().__init__(**kwargs)

    def build_branch_adapter(self, embed_dims: int) -> nn.Module:
        return BottleneckAdapter(embed_dims, self.adapter_hidden_dims, act_layer=nn.GELU)
