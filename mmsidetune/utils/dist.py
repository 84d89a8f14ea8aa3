"""Multi-process training on CPU (gloo) with mmengine's Runner.

mmengine 0.10.7 cannot run ``--launcher pytorch`` without CUDA: its ``init_dist`` calls
``torch.cuda.set_device`` (``AttributeError`` on a CPU build of torch) and ``Runner.wrap_model``
passes ``device_ids=[LOCAL_RANK]`` to DDP, which torch refuses for a CPU module. CPU runs are
useful to test multi-process behaviour (and on CPU clusters), so ``tools/train.py`` /
``tools/test.py`` call :func:`setup_cpu_distributed`: with no CUDA device it starts the gloo
process group itself (mmengine then skips ``init_dist``) and wraps the model with
:class:`CPUDistributedDataParallel`. The backend is never switched silently: a config that asks
for NCCL on a machine without CUDA raises and names the option to pass
(``--cfg-options env_cfg.dist_cfg.backend=gloo``).
"""
import datetime

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel, is_model_wrapper
from mmengine.registry import MODEL_WRAPPERS

__all__ = ['CPUDistributedDataParallel', 'setup_cpu_distributed', 'parse_device', 'unwrap_model']


def unwrap_model(model):
    """The model inside an mmengine/torch DDP-style wrapper (``model.module``), else ``model``."""
    return model.module if is_model_wrapper(model) else model


def parse_device(text: str) -> str:
    """A tool's ``--device``: ``'cpu'``, ``'cuda'`` or ``'cuda:N'`` of a device this machine has
    (checked before anything is built).

    Raises:
        argparse.ArgumentTypeError: naming the value and what is accepted / available.
    """
    from argparse import ArgumentTypeError
    kind, _, index = text.partition(':')
    if kind not in ('cpu', 'cuda') or (index and (kind == 'cpu' or not index.isdigit())):
        raise ArgumentTypeError(f'expected cpu, cuda or cuda:N, got {text!r}')
    if kind == 'cuda' and not torch.cuda.is_available():
        raise ArgumentTypeError(f'{text!r}: CUDA is not available on this machine')
    if index and int(index) >= torch.cuda.device_count():
        raise ArgumentTypeError(
            f'{text!r}: this machine has {torch.cuda.device_count()} CUDA devices')
    return text


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's ``MMDistributedDataParallel`` for a model on CPU.

    Same training step as mmengine's; ``device_ids`` (which mmengine's Runner always passes) is
    dropped when every parameter is on the CPU, and the defaults are the ones the Runner uses
    for its own wrapper: ``broadcast_buffers=False``, ``find_unused_parameters=False``. Frozen
    parameters (``requires_grad=False`` before wrapping) get no gradient bucket, as in DDP.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        if device_ids is not None and all(p.device.type == 'cpu' for p in module.parameters()):
            device_ids = None
        kwargs.setdefault('broadcast_buffers', False)
        kwargs.setdefault('find_unused_parameters', False)
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def setup_cpu_distributed(cfg: Config) -> bool:
    """Prepare a ``launcher='pytorch'`` run on a machine without CUDA (see the module docstring).

    Does nothing (returns False) when ``cfg.launcher`` is ``'none'`` or CUDA is available.
    Otherwise initialises the gloo process group from torchrun's environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), sets ``cfg.model_wrapper_cfg`` to
    :class:`CPUDistributedDataParallel` (keeping ``cfg.find_unused_parameters``) unless the
    config sets its own wrapper, and returns True.

    Raises:
        ValueError: if the launcher is not ``'pytorch'`` or ``env_cfg.dist_cfg.backend`` is not
            ``'gloo'`` (NCCL needs CUDA).
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise ValueError(f'no CUDA device: multi-process CPU runs support --launcher pytorch '
                         f'(torchrun, tools/dist_train.sh) only, got --launcher {launcher}')
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    backend = dist_cfg.pop('backend', 'nccl')
    if backend != 'gloo':
        raise ValueError(f'no CUDA device: the {backend!r} backend cannot run; for CPU processes '
                         'add --cfg-options env_cfg.dist_cfg.backend=gloo')
    if 'timeout' in dist_cfg:
        dist_cfg['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo', **dist_cfg)
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel',
                                     find_unused_parameters=cfg.get('find_unused_parameters',
                                                                    False))
    return True
