"""Registries of the tuning methods and of the models that can switch between them.

* :data:`TUNING_METHODS` (an mmengine ``Registry``): the method classes, built from
  ``method=dict(type='E3VA', rank=8)`` in a :class:`~mmsidetune.tuners.TunedBackbone` config or
  by short name (``'e3va'``) with :func:`build_method`.
* :data:`METHOD_VARIANTS`: bench rows that run one method with other options
  (``'e3va-lowmem'``), filled by :func:`register_method_variant`.
* :func:`register_model_tuning` / :func:`find_model_tuning`: each tunable kind of model (a
  detector or segmentor with a tunable backbone, the M2IST grounder) says which methods a config's
  model supports and how to switch its config to one of them. ``tools/bench.py`` asks here and
  knows no model itself.
"""
from typing import Dict, List, Optional, Tuple, Union

from mmengine.registry import Registry

__all__ = [
    'TUNING_METHODS', 'METHOD_VARIANTS', 'build_method', 'method_class', 'register_method_variant',
    'ModelTuning', 'register_model_tuning', 'find_model_tuning'
]

#: Method classes by class name (``'E3VA'``, ``'LoRA'`` ...); each has a short ``name``.
TUNING_METHODS = Registry('tuning method', scope='mmsidetune')

#: Bench method name -> (a method's short name, its options), e.g. ``'e3va-lowmem'``.
METHOD_VARIANTS: Dict[str, Tuple[str, dict]] = {}


def method_class(name: str) -> type:
    """The method class for a class name (``'E3VA'``) or a short name (``'e3va'``).

    Raises:
        KeyError: for an unknown name (the known ones are listed).
    """
    cls = TUNING_METHODS.get(name)
    if cls is not None:
        return cls
    for cls in TUNING_METHODS.module_dict.values():
        if cls.name == name or name in getattr(cls, 'aliases', ()):
            return cls
    known = sorted(c.name for c in TUNING_METHODS.module_dict.values())
    raise KeyError(f'unknown tuning method {name!r}; known: {known} (or their class names '
                   f'{sorted(TUNING_METHODS.module_dict)})')


def build_method(cfg: Union[str, dict]):
    """Build a tuning method from ``'e3va'``, ``'E3VA'`` or ``dict(type='E3VA', rank=8)``.

    Raises:
        KeyError: for an unknown method. TypeError: for an option the method does not take.
    """
    cfg = dict(type=cfg) if isinstance(cfg, str) else dict(cfg)
    cls = method_class(cfg.pop('type'))
    try:
        return cls(**cfg)
    except TypeError as e:
        raise TypeError(f'tuning method {cls.__name__}: {e}') from None


def register_method_variant(name: str, method: str, **options) -> None:
    """Make ``name`` a bench method: ``method`` (short name) with ``options``."""
    method_class(method)
    METHOD_VARIANTS[name] = (method, dict(options))


class ModelTuning:
    """How one kind of model switches tuning method in its config (base class).

    Subclasses implement :meth:`matches`, :meth:`methods` and :meth:`apply`; bench and the
    training-cost report use nothing else.
    """

    def matches(self, model_cfg: dict) -> bool:
        """Whether this kind of model is ``model_cfg``."""
        raise NotImplementedError

    def methods(self, model_cfg: dict) -> List[str]:
        """The methods this model supports, short names in display order (``--methods all``)."""
        raise NotImplementedError

    def variants(self, model_cfg: dict) -> List[str]:
        """Extra bench names (:data:`METHOD_VARIANTS`) whose method this model supports."""
        ok = set(self.methods(model_cfg))
        return [name for name, (method, _) in METHOD_VARIANTS.items() if method in ok]

    def apply(self, model_cfg: dict, method: str) -> dict:
        """A copy of ``model_cfg`` trained with ``method`` (a short name or a variant)."""
        raise NotImplementedError

    def describe(self, model_cfg: dict) -> str:
        """A few words for the bench log (e.g. the built backbone type)."""
        return str(model_cfg.get('type'))

    def fixed_input_size(self, model_cfg: dict) -> Optional[str]:
        """Why this model's training image size cannot be changed (None: it can)."""
        return None


_MODEL_TUNINGS: List[ModelTuning] = []


def register_model_tuning(tuning: ModelTuning) -> ModelTuning:
    """Add a :class:`ModelTuning` (later registrations are asked first)."""
    _MODEL_TUNINGS.insert(0, tuning)
    return tuning


def find_model_tuning(model_cfg: dict) -> ModelTuning:
    """The :class:`ModelTuning` that handles ``model_cfg``.

    Raises:
        ValueError: if no registered kind of model matches (the model and backbone types are
            named).
    """
    for tuning in _MODEL_TUNINGS:
        if tuning.matches(model_cfg):
            return tuning
    backbone = model_cfg.get('backbone') or {}
    kind = backbone.get('type') if isinstance(backbone, dict) else backbone
    raise ValueError(f"no tuning method can be applied to model type {model_cfg.get('type')!r} "
                     f'with backbone {kind!r}: supported are TunedBackbone, the backbones listed '
                     'in docs/backbones.md and the M2IST grounder')

