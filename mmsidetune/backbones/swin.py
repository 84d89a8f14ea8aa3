"""The Swin backbones of earlier releases, kept as thin aliases of
:class:`~mmsidetune.tuners.TunedBackbone` with mmdet's ``SwinTransformer`` as the module.

``dict(type='E3VASwinTransformer', embed_dims=128, ..., adapter_rank=8)`` is
``dict(type='TunedBackbone', module=dict(type='mmdet.SwinTransformer', embed_dims=128, ...),
method=dict(type='E3VA', rank=8))``: the same parameters, the same state-dict keys
(``stages.*``, ``norm{i}.*``, ``highway.*``) and the same outputs, so every config and checkpoint
of the earlier ``*SwinTransformer`` classes loads and trains unchanged. Every argument of mmdet's
``SwinTransformer`` is taken, plus the method options below (old name -> method option). The
baselines added later (Partial-1, BitFit, Mona) have aliases too, so that every paper config
switches method by ``model.backbone.type`` alone.
"""
import inspect

from mmdet.models.backbones.swin import SwinTransformer
from mmengine.registry import MODELS

from ..tuners import BACKBONE_ALIASES, TunedBackbone

__all__ = [
    'FullSwinTransformer', 'FrozenSwinTransformer', 'AdapterSwinTransformer',
    'LoRASwinTransformer', 'AdaptFormerSwinTransformer', 'LoRandSwinTransformer',
    'E3VASwinTransformer', 'PartialSwinTransformer', 'BitFitSwinTransformer', 'MonaSwinTransformer',
    'SWIN_ALIASES'
]


class _SwinAlias(TunedBackbone):
    """``TunedBackbone(module=mmdet SwinTransformer(**swin_args), method=...)``, an instance of
    the alias class (``type(model).__name__ == 'E3VASwinTransformer'``)."""

    method_type = ''
    #: legacy keyword -> the method's option
    options = {}

    def __new__(cls, init_cfg=None, **kwargs):
        module, _, _ = cls._parse(kwargs)
        return super().__new__(cls, module=SwinTransformer(**module))

    def __init__(self, init_cfg=None, **kwargs):
        _, method, _ = self._parse(kwargs)
        super().__init__(method=method, init_cfg=init_cfg)

    @classmethod
    def _parse(cls, kwargs):
        module, method, extra = cls.split_config(kwargs)
        module.pop('type')
        swin_args = inspect.signature(SwinTransformer.__init__).parameters
        unknown = [k for k in module if k not in swin_args]
        if unknown:
            spelled = {new: old for old, new in cls.options.items()}
            hints = [f'{k} is spelled {spelled[k]} here' for k in unknown if k in spelled]
            raise TypeError(f'{cls.__name__}: unknown options {unknown} (neither mmdet '
                            f"SwinTransformer's nor this alias' own: {sorted(cls.options)})"
                            + (f'; {"; ".join(hints)}' if hints else ''))
        return module, method, extra

    @classmethod
    def split_config(cls, cfg: dict):
        """``(module config, method config, wrapper keys)`` of an alias config."""
        cfg = dict(cfg)
        cfg.pop('type', None)
        extra = {k: cfg.pop(k) for k in ('init_cfg', ) if k in cfg}
        method = dict(type=cls.method_type)
        method.update({new: cfg.pop(old) for old, new in cls.options.items() if old in cfg})
        return dict(type='mmdet.SwinTransformer', **cfg), method, extra


def _alias(name: str, method_type: str, options: dict, doc: str):
    cls = type(name, (_SwinAlias, ), dict(method_type=method_type, options=options,
                                          __doc__=doc, __module__=__name__))
    MODELS.register_module(module=cls)
    BACKBONE_ALIASES[name] = cls
    return cls


FullSwinTransformer = _alias('FullSwinTransformer', 'Full', {},
                             'mmdet Swin, fully fine-tuned (method ``Full``).')
FrozenSwinTransformer = _alias('FrozenSwinTransformer', 'Frozen', {},
                               'mmdet Swin, frozen (method ``Frozen``).')
AdapterSwinTransformer = _alias('AdapterSwinTransformer', 'Adapter',
                                dict(adapter_hidden_dims='hidden_dims'),
                                'mmdet Swin with serial adapters (method ``Adapter``; '
                                '``adapter_hidden_dims`` -> ``hidden_dims``).')
LoRASwinTransformer = _alias('LoRASwinTransformer', 'LoRA',
                             dict(lora_rank='rank', lora_alpha='alpha', lora_targets='targets'),
                             'mmdet Swin with LoRA (method ``LoRA``; ``lora_rank``, '
                             '``lora_alpha``, ``lora_targets`` -> ``rank``, ``alpha``, '
                             '``targets``).')
AdaptFormerSwinTransformer = _alias('AdaptFormerSwinTransformer', 'AdaptFormer',
                                    dict(adapter_hidden_dims='hidden_dims',
                                         adapter_scale='scale'),
                                    'mmdet Swin with AdaptFormer (method ``AdaptFormer``; '
                                    '``adapter_hidden_dims``, ``adapter_scale`` -> '
                                    '``hidden_dims``, ``scale``).')
LoRandSwinTransformer = _alias('LoRandSwinTransformer', 'LoRand',
                               dict(adapter_hidden_ratio='hidden_ratio',
                                    adapter_hidden_dims='hidden_dims', adapter_rank='rank',
                                    adapter_branches='num_branches'),
                               'mmdet Swin with LoRand (method ``LoRand``; ``adapter_*`` -> '
                               '``hidden_ratio``, ``hidden_dims``, ``rank``, ``num_branches``).')
E3VASwinTransformer = _alias('E3VASwinTransformer', 'E3VA',
                             dict(adapter_hidden_ratio='hidden_ratio', adapter_rank='rank',
                                  adapter_branches='num_branches', highway='highway',
                                  tap_dtype='tap_dtype', recompute_trunk='recompute_trunk',
                                  trunk_dtype='trunk_dtype'),
                             'mmdet Swin with E3VA (method ``E3VA``; ``adapter_hidden_ratio``, '
                             '``adapter_rank``, ``adapter_branches`` -> ``hidden_ratio``, '
                             '``rank``, ``num_branches``; ``highway``, ``tap_dtype``, '
                             '``recompute_trunk``, ``trunk_dtype`` as they are).')
PartialSwinTransformer = _alias('PartialSwinTransformer', 'Partial',
                                dict(partial_blocks='num_blocks'),
                                'mmdet Swin, only its last block trained (method ``Partial``, '
                                'Partial-1; ``partial_blocks`` -> ``num_blocks``).')
BitFitSwinTransformer = _alias('BitFitSwinTransformer', 'BitFit', {},
                               'mmdet Swin, only its biases trained (method ``BitFit``).')
MonaSwinTransformer = _alias('MonaSwinTransformer', 'Mona',
                             dict(adapter_hidden_dims='hidden_dims'),
                             'mmdet Swin with Mona (method ``Mona``; ``adapter_hidden_dims`` -> '
                             '``hidden_dims``).')

#: method short name (configs/<name>/) -> its Swin alias type
SWIN_ALIASES = {
    'full': 'FullSwinTransformer', 'frozen': 'FrozenSwinTransformer',
    'partial': 'PartialSwinTransformer', 'bitfit': 'BitFitSwinTransformer',
    'adapter': 'AdapterSwinTransformer', 'lora': 'LoRASwinTransformer',
    'adaptformer': 'AdaptFormerSwinTransformer', 'lorand': 'LoRandSwinTransformer',
    'mona': 'MonaSwinTransformer', 'e3va': 'E3VASwinTransformer'
}
