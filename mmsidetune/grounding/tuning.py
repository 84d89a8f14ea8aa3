"""How bench and the training-cost report switch an M2IST grounder config between its tuning
methods (:class:`~mmsidetune.tuners.ModelTuning`; registered when the package is imported)."""
import copy
from typing import List, Optional

from mmengine.registry import MODELS

from ..tuners.registry import METHOD_VARIANTS, ModelTuning, method_class, register_model_tuning
from .detector import M2ISTGrounder

__all__ = ['GrounderTuning']


class GrounderTuning(ModelTuning):
    """Switches ``model.method`` of an :class:`~mmsidetune.grounding.M2ISTGrounder` config
    between ``full``, ``adapter`` and ``m2ist`` (docs/m2ist.md)."""

    @staticmethod
    def _grounder_class(model_cfg) -> Optional[type]:
        kind = model_cfg.get('type') if isinstance(model_cfg, dict) else None
        if isinstance(kind, str):
            kind = MODELS.get(kind)
        return kind if isinstance(kind, type) and issubclass(kind, M2ISTGrounder) else None

    def matches(self, model_cfg) -> bool:
        return self._grounder_class(model_cfg) is not None

    def methods(self, model_cfg) -> List[str]:
        return list(self._grounder_class(model_cfg).supported_methods)

    def apply(self, model_cfg, method: str) -> dict:
        """A copy of ``model_cfg`` with ``method`` set (the short name, whose options come from
        the config's ``side_network`` / ``adapter_bottleneck``; a method config of the same
        method already in the config is kept). The deprecated ``tuning`` key is removed.

        Raises:
            ValueError: for a method the grounder does not support (the supported are listed).
        """
        name, options = METHOD_VARIANTS.get(method, (method, {}))
        supported = self.methods(model_cfg)
        if name not in supported:
            raise ValueError(f'method {method!r} does not apply to an M2IST grounder; '
                             f'applicable: {supported}')
        model_cfg = copy.deepcopy(model_cfg)
        model_cfg.pop('tuning', None)
        old = model_cfg.get('method')
        if isinstance(old, dict) and method_class(old.get('type')).name == name:
            new = dict(old, **copy.deepcopy(options))
        elif options:
            new = dict(type=method_class(name).__name__, **copy.deepcopy(options))
        else:
            new = name
        model_cfg['method'] = new
        return model_cfg

    def describe(self, model_cfg) -> str:
        method = model_cfg.get('method') or model_cfg.get('tuning') or 'm2ist'
        method = method if isinstance(method, str) else method.get('type')
        return (f"{model_cfg.get('type')}({model_cfg['backbone'].get('type')} + "
                f"{model_cfg['language_model'].get('type')}, {method_class(method).__name__})")

    def fixed_input_size(self, model_cfg) -> Optional[str]:
        return ('an M2IST grounder pads every image onto a fixed canvas (GroundingPad size), '
                'which fixes the number of visual tokens the VL encoder is built for; change '
                'pad_size and neck.num_visual_tokens in the config instead')


register_model_tuning(GrounderTuning())
