"""An optimizer-wrapper constructor that gives the optimizer only the trainable parameters."""
from typing import List, Optional, Union

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ..utils.dist import unwrap_model


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TrainableOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor, minus the parameters that do not require grad.

    mmengine's ``DefaultOptimWrapperConstructor`` hands ``model.parameters()`` to the optimizer
    when there is no ``paramwise_cfg`` (frozen trunk parameters included), and otherwise skips
    them with one warning per parameter (hundreds for a frozen Swin). This constructor skips any
    sub-module whose parameters are all frozen and logs one line with the count, so the
    optimizer's param groups hold exactly the method's trainable set (docs/tuners.md).
    A frozen parameter inside a module that also holds trainable ones is left out by mmengine's own
    rule (with its warning).
    ``paramwise_cfg`` (``custom_keys``, ``norm_decay_mult``...) applies as in mmengine; parameter
    names are the state-dict keys (``backbone.norm3.weight``, ``backbone.highway.*``), so keys
    written against a checkpoint match.

    Use it from a config::

        optim_wrapper = dict(constructor='TrainableOptimWrapperConstructor', optimizer=...)

    Raises:
        ValueError: when the model has no trainable parameter at all.
    """

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module: Optional[Union[int, float]] = None) -> None:
        own = list(module.parameters())
        if own and not any(p.requires_grad for p in own):
            return  # a wholly frozen sub-module: skipped silently
        super().add_params(params, module, prefix, is_dcn_module)

    def __call__(self, model: nn.Module) -> OptimWrapper:
        inner = unwrap_model(model)
        if not any(p.requires_grad for p in inner.parameters()):
            raise ValueError(f'{type(inner).__name__} has no parameter with requires_grad=True: '
                             'nothing to optimise')
        if not self.paramwise_cfg:
            # mmengine would pass model.parameters(); route through add_params instead, which
            # applies no rule when paramwise_cfg is empty but drops the frozen parameters.
            self.paramwise_cfg = {'bypass_duplicate': False}
            try:
                wrapper = super().__call__(model)
            finally:
                self.paramwise_cfg = {}
        else:
            wrapper = super().__call__(model)
        num_frozen = sum(p.numel() for p in inner.parameters() if not p.requires_grad)
        print_log(f'{type(self).__name__}: {num_frozen} frozen parameters left out of the '
                  'optimizer', logger='current')
        return wrapper
