"""BitFit (Ben Zaken et al., "BitFit: Simple Parameter-efficient Fine-tuning for
Transformer-based Masked Language-models", ACL 2022): train only the trunk's bias terms."""
from ..registry import TUNING_METHODS
from .base import TuningMethod

__all__ = ['BitFit']


@TUNING_METHODS.register_module()
class BitFit(TuningMethod):
    """Every bias of the trunk trains, everything else is frozen; the trunk is in eval mode, as
    for the other frozen-trunk baselines. Gradients cross the whole trunk (in-stream), so backward
    stores its activations.

    Which biases (docs/methods/bitfit.md): every parameter named ``*.bias``, the norms' biases
    included (BitFit, section 2, trains "the bias terms" of every layer, LayerNorm's included);
    ResNet's convolutions have no bias, so there only the BatchNorm biases train. With
    ``position_bias`` (default), Swin's ``relative_position_bias_table`` (the additive bias of
    the attention logits) trains too, as in the Mona code base's ``SwinTransformer_bitfit``
    (it selects parameters whose name contains ``'bias'``): Swin-B 201,656 (V-PETL Bench:
    0.20 M), Swin-L 302,484 (0.30 M); without the tables 138,112 and 207,168.

    Args:
        position_bias (bool): also train Swin's relative position bias tables. Defaults to True.
    """

    name = 'bitfit'
    layers_name = None
    trains_output_norms = False

    def __init__(self, position_bias: bool = True):
        super().__init__()
        self.position_bias = bool(position_bias)

    def trunk_parameters(self, family):
        suffixes = ('.bias', ) + (('.relative_position_bias_table', ) if self.position_bias
                                   else ())
        return [p for n, p in family.module.named_parameters() if ('.' + n).endswith(suffixes)]
