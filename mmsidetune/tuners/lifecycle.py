"""The one lifecycle of a tuned model: build the method, attach it, freeze, eval, dtype, summary.

Shared by :class:`~mmsidetune.tuners.TunedBackbone` (a backbone family) and the M2IST grounder
(:class:`~mmsidetune.grounding.M2ISTGrounder`, its two encoders as the family), docs/tuners.md.
Freezing happens in ``__init__``: mmengine wraps the model in DDP inside ``Runner.__init__``,
before ``init_weights()`` and ``train()``, and parameters frozen later give DDP reduction errors.
The method's layers are a child module under ``method.layers_name`` (``highway``, ``adapters``,
``lora``, ``side_network``), so their parameter names and state-dict keys agree.
"""
from typing import List, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log

from .freezing import freeze_except, keep_frozen_in_eval
from .methods.base import TuningMethod
from .registry import TUNING_METHODS, build_method

__all__ = ['TuningLifecycle']


class TuningLifecycle:
    """Mixin of an ``nn.Module`` that a tuning method is applied to.

    The host calls :meth:`setup_tuning` at the end of its ``__init__`` and defines
    :meth:`tuning_summary`; ``family`` (a :class:`~mmsidetune.tuners.BackboneFamily`) says what
    the trunk is. Attributes set: ``family``, ``method`` (read-only), ``tuning_method`` (short
    name) and the method's layers under ``method.layers_name``.
    """

    def setup_tuning(self, family, method: Union[str, dict, TuningMethod]) -> None:
        """Build ``method`` (a short name, a config or a method), check it fits the family,
        attach it, add its layers, freeze the trunk, cast it to the method's ``trunk_dtype``,
        put it in eval mode and log :meth:`tuning_summary`.

        Raises:
            TypeError: for a ``method`` that is not a name, a config or a ``TuningMethod``.
            ValueError: for a method that does not apply to the family (the reason is given)
                or a frozen-trunk method with upstream partial freezing (``frozen_stages``).
        """
        method = build_method(method) if isinstance(method, (str, dict)) else method
        if not isinstance(method, TuningMethod):
            known = sorted(c.name for c in TUNING_METHODS.module_dict.values())
            raise TypeError(f'{self.tuning_owner()}: method must be a method name ({known}), a '
                            f"config dict(type='E3VA', ...) or a TuningMethod, got {method!r}")
        if method.freezes_trunk:
            family.check_frozen(type(method).__name__)
        try:
            method.attach(family)
        except Exception:
            method.detach()  # what it hooked before it refused
            raise
        self.__dict__['family'] = family
        self.__dict__['_method'] = method
        if method.layers_name:
            self.add_module(method.layers_name, method)
        self.tuning_method = method.name
        if method.freezes_trunk:
            freeze_except(family.trunk_parameters(), self.trainable_parameters())
        self.cast_trunk(method.trunk_dtype)
        self.train(self.training)  # a frozen trunk is in eval mode from the start
        print_log(self.tuning_summary(), logger='current')

    @property
    def method(self) -> TuningMethod:
        """The tuning method (its layers are ``getattr(self, method.layers_name)``)."""
        return self._method

    def trainable_modules(self) -> List[nn.Module]:
        """The modules whose parameters train: the method's layers (if any) and, for a method
        that trains them, the family's output norms; the whole model for ``Full``."""
        if not self._method.freezes_trunk:
            return [self]
        mods = [self._method] if self._method.layers_name else []
        return mods + (self.family.output_norms() if self._method.trains_output_norms else [])

    def trainable_parameters(self) -> List[nn.Parameter]:
        """The parameters that train: those of :meth:`trainable_modules` and the trunk
        parameters the method trains in place (Partial-1's last blocks, BitFit's biases)."""
        params = [p for m in self.trainable_modules() for p in m.parameters()]
        if self._method.freezes_trunk:
            params += self._method.trunk_parameters(self.family)
        return params

    def keep_trunk_in_eval(self, mode: bool) -> None:
        """Call at the end of the host's ``train(mode)``: a frozen trunk stays in eval mode (no
        DropPath, BatchNorm statistics fixed), the part a method trains in place follows
        ``mode``; the method's layers keep ``mode``."""
        if self._method.freezes_trunk:
            keep_frozen_in_eval(self.family.trunk())
            self._method.train_trunk_part(self.family, mode)

    def cast_trunk(self, dtype: torch.dtype) -> None:
        """Hold the frozen trunk's floating tensors (output norms excluded) in ``dtype``; the
        dtype is decided at construction (the method's ``trunk_dtype``) and applied here only."""
        for t in self.family.frozen_tensors():
            if t.is_floating_point() and t.dtype != dtype:
                t.data = t.data.to(dtype)

    def tuning_owner(self) -> str:
        """The model's name in messages and the summary line (default: its class name)."""
        return type(self).__name__

    def tuning_summary(self) -> str:
        """One line: type, parts, method, trainable / total parameters
        (:func:`~mmsidetune.tuners.freezing.summary_line`)."""
        raise NotImplementedError
