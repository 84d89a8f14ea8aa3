"""What every tuned model does with its frozen part: freeze it in ``__init__``, keep it in eval
mode, and log one summary line (docs/tuners.md).

Used by the one lifecycle of every tuned model (:mod:`mmsidetune.tuners.lifecycle`), so
:class:`~mmsidetune.tuners.TunedBackbone` and :class:`~mmsidetune.grounding.M2ISTGrounder` log
the same line and freeze the same way. Freezing happens in ``__init__``: mmengine wraps the
model in DDP inside ``Runner.__init__``, before ``init_weights()`` and ``train()``, and
parameters frozen later give DDP reduction errors.
"""
from typing import Iterable, Sequence, Union

import torch.nn as nn

__all__ = ['freeze_except', 'keep_frozen_in_eval', 'count_trainable', 'summary_line']

Modules = Union[nn.Module, Iterable[nn.Module]]


def _modules(modules: Modules):
    return [modules] if isinstance(modules, nn.Module) else list(modules)


def freeze_except(frozen: Union[Modules, Iterable[nn.Parameter]],
                  trainable: Iterable[nn.Parameter] = ()) -> int:
    """Set ``requires_grad`` of every parameter of ``frozen`` (modules, or parameters): True
    exactly for the parameters in ``trainable`` (the same objects), False for all others.

    Returns:
        int: the number of scalars frozen.
    """
    keep = set(trainable)  # a tensor hashes by identity
    params = [q for x in _modules(frozen)
              for q in (x.parameters() if isinstance(x, nn.Module) else [x])]
    frozen_scalars = 0
    for p in params:
        p.requires_grad_(p in keep)
        frozen_scalars += 0 if p in keep else p.numel()
    return frozen_scalars


def keep_frozen_in_eval(modules: Modules) -> None:
    """Put the frozen modules in eval mode (call it at the end of an overridden ``train()``):
    no dropout or DropPath, BatchNorm statistics fixed, whatever mode the rest of the model is
    in."""
    for module in _modules(modules):
        module.eval()


def count_trainable(module: nn.Module):
    """``(trainable, total)`` scalars of ``module``'s parameters, shared parameters once."""
    params = list(module.parameters())  # Module.parameters() yields each parameter once
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def summary_line(owner: str, parts: Sequence[str], method: str, module: nn.Module,
                 scope: str) -> str:
    """The one-line summary a tuned model logs after freezing.

    ``'<owner> (<parts>, <method>): <t> M of <T> M <scope> parameters trainable (<p> %)'``, e.g.
    ``'TunedBackbone (ResNet, e3va): 0.752 M of 24.26 M backbone parameters trainable (3.10 %)'``
    or ``'M2ISTGrounder (DETRVisionEncoder, BertLanguageModel, m2ist): 0.507 M of 24.01 M model
    parameters trainable (2.11 %)'``.

    Args:
        owner: the tuned model's class name. parts: the wrapped modules' class names.
        method: the tuning method's short name (``tuning_method``). module: whose parameters
            are counted. scope: what ``module`` is (``'backbone'``, ``'model'``).
    """
    trainable, total = count_trainable(module)
    inner = ', '.join(list(parts) + [method])
    return (f'{owner} ({inner}): {trainable / 1e6:.3f} M of {total / 1e6:.2f} M {scope} '
            f'parameters trainable ({100.0 * trainable / max(total, 1):.2f} %)')
