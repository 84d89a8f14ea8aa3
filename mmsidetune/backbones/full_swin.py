"""Full fine-tuning baseline: mmdet's Swin with every parameter trainable."""
from .tuned_swin import TunedSwinTransformer, register_tuned_swin

__all__ = ['FullSwinTransformer']


@register_tuned_swin('full')
class FullSwinTransformer(TunedSwinTransformer):
    """Swin Transformer trained end to end (the reference every cost ratio is taken against).

    Identical to ``mmdet.models.SwinTransformer`` in structure and forward; differs only in the
    pretrained loader it shares with the other methods (official Swin files are recognised and
    converted, missing trunk keys raise). ``frozen_stages`` works as in mmdet.
    """

    freeze_trunk = False
