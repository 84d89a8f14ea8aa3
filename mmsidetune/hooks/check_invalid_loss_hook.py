"""Stop training at the first non-finite loss or gradient, before anything is saved from it."""
from typing import Dict, List, Optional

import torch
from mmdet.engine.hooks import CheckInvalidLossHook
from mmengine.optim import AmpOptimWrapper, OptimWrapperDict
from mmengine.registry import HOOKS

from ..cost import unwrap_model

__all__ = ['NonFiniteError', 'NoGradientError', 'FiniteLossHook', 'non_finite_tensors']


class NonFiniteError(FloatingPointError):
    """Training produced a non-finite (NaN / inf) loss, gradient or weight; the message names the
    iteration and the tensors."""


class NoGradientError(RuntimeError):
    """Trainable tensors of a tuning method received no gradient in the first training
    iteration (they would never train); the message names them and the likely causes."""


def _fmt(log_vars: Optional[Dict]) -> str:
    if not log_vars:
        return 'not recorded'
    return ', '.join(f'{k}={float(torch.as_tensor(v).detach().float().mean()):.4g}'
                     for k, v in log_vars.items())


def non_finite_tensors(named: Dict[str, torch.Tensor]) -> List[str]:
    """Names of the floating-point tensors in ``named`` holding a NaN or an inf (one device
    synchronisation for the whole dict)."""
    items = [(k, v) for k, v in named.items()
             if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel()]
    if not items:
        return []
    finite = torch.stack([torch.isfinite(v).all().to('cpu', non_blocking=True) for _, v in items])
    return [k for (k, _), ok in zip(items, finite.tolist()) if not ok]


@HOOKS.register_module()
class FiniteLossHook(CheckInvalidLossHook):
    """mmdet's ``CheckInvalidLossHook``, made to stop a run at the first non-finite step.

    mmdet 3.3's hook asserts ``torch.isfinite(outputs['loss'])`` every ``interval`` (50)
    iterations *after* the optimizer step, with an ``AssertionError`` that carries no message.
    By then the weights are already NaN and, with a checkpoint interval that is not a multiple of
    50, checkpoints full of NaN have been written (and ``max_keep_ckpts`` has deleted the good
    ones). This subclass checks every iteration, before the optimizer step changes a weight:

    * every loss term (keys containing ``'loss'`` in the model's parsed losses, and their sum),
      as soon as the model's ``parse_losses`` returns them;
    * with ``check_grads``, the gradients of every trainable parameter, just before
      ``optimizer.step()`` (a torch optimizer step pre-hook). Skipped under
      ``AmpOptimWrapper``: its dynamic loss scaling skips steps with inf gradients by design.

    * with ``check_unused``, once, at the first optimizer step (after every model surgery of
      mmengine, such as the SyncBN conversion): every parameter the optimizer was given that a
      tuning method declares trainable (the layers of each
      :class:`~mmsidetune.tuners.methods.TuningMethod` in the model) must have a gradient;
      otherwise :class:`NoGradientError` names them and the likely cause. The step pre-hook is
      removed after that step: nothing is checked later.

    * on resume, before the checkpoint's weights and optimizer state are loaded: the checkpoint
      must have been written from this model (same tensors and shapes, same optimizer groups and
      state shapes); otherwise :class:`~mmsidetune.utils.CheckpointMismatchError` names both
      models' tuning, the first differing tensors and ``load_from`` (docs/scale.md).

    Either raises :class:`NonFiniteError` naming the iteration (1-based, as in the log lines and
    ``iter_N.pth``), the loss terms (with their values) and the first parameters with non-finite
    gradients. The optimizer step does not run, no hook's ``after_train_iter`` runs, so no
    checkpoint is written from that state and none is deleted. The loss check of the parent
    (on ``outputs``, after the step) is kept for models whose ``train_step`` does not call
    ``parse_losses``. Every config of mmsidetune adds it through ``custom_hooks``
    (docs/scale.md, "Non-finite losses").

    Args:
        interval (int): Check every ``interval`` iterations. Defaults to 1.
        check_grads (bool): Also check trainable gradients before each step. Defaults to True.
        check_unused (bool): Check once that the method's trainable tensors received a
            gradient (docs/scale.md, "Nothing trains in silence"). Defaults to True.
    """

    priority = 'VERY_HIGH'  # before every other after_train_iter (CheckpointHook: VERY_LOW)

    def __init__(self, interval: int = 1, check_grads: bool = True,
                 check_unused: bool = True) -> None:
        super().__init__(interval=interval)
        self.check_grads = check_grads
        self.check_unused = check_unused
        self._unused_handles = []
        self._received_checked: Dict[int, bool] = {}
        self._runner = None
        self._log_vars = None
        self._names: Dict[torch.Tensor, str] = {}
        self._handles = []

    def _iteration(self) -> int:
        return self._runner.iter + 1

    def _active(self) -> bool:
        return self.every_n_train_iters(self._runner, self.interval)

    def _check_log_vars(self, log_vars: Dict, where: str) -> None:
        terms = {k: v for k, v in log_vars.items() if 'loss' in k}
        bad = [k for k, v in terms.items() if not torch.isfinite(torch.as_tensor(v)).all()]
        if bad:
            raise NonFiniteError(
                f'non-finite loss at iteration {self._iteration()} ({where}): {", ".join(bad)} '
                f'(loss terms: {_fmt(terms)}); training stopped before the optimizer step and '
                'before any checkpoint of this state (lower the learning rate, clip gradients '
                'with optim_wrapper.clip_grad, or check the data of this iteration)')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False) or not isinstance(checkpoint, dict):
            return  # load_from: a start from weights, not a resume
        from mmengine.runner import find_latest_checkpoint

        from ..utils.checkpoint import check_resume_fits
        path = runner._load_from or find_latest_checkpoint(runner.work_dir) or 'the checkpoint'
        optim_wrapper = runner.optim_wrapper
        check_resume_fits(unwrap_model(runner.model),
                          None if isinstance(optim_wrapper, dict) else optim_wrapper,
                          checkpoint, path, runner.cfg)

    def before_train(self, runner) -> None:
        self._runner = runner
        model = unwrap_model(runner.model)
        parse = model.parse_losses

        def parse_losses(losses):
            loss, log_vars = parse(losses)
            self._log_vars = {k: v.detach() if isinstance(v, torch.Tensor) else v
                              for k, v in log_vars.items()}
            if self._active():
                self._check_log_vars(log_vars, 'before backward')
            return loss, log_vars

        model.parse_losses = parse_losses  # an instance attribute, removed in after_train
        self._model = model
        wrappers = (runner.optim_wrapper.values()
                    if isinstance(runner.optim_wrapper, OptimWrapperDict) else
                    [runner.optim_wrapper])
        self._names = {p: n for n, p in model.named_parameters()}  # a tensor hashes by identity
        if self.check_unused:
            from ..tuners.methods.base import TuningMethod
            self._declared = {p for m in model.modules() if isinstance(m, TuningMethod)
                              for p in m.parameters() if p.requires_grad}
            self._received_checked = {id(w.optimizer): False for w in wrappers}
            for wrapper in wrappers:
                self._unused_handles.append(
                    wrapper.optimizer.register_step_pre_hook(self._check_received))
        if self.check_grads:
            for wrapper in wrappers:
                if isinstance(wrapper, AmpOptimWrapper):
                    continue
                self._handles.append(
                    wrapper.optimizer.register_step_pre_hook(self._check_grads))

    def _check_grads(self, optimizer, args, kwargs) -> None:
        if not self._active():
            return
        grads = {self._names.get(p, f'param {i}'): p.grad
                 for i, p in enumerate(p for g in optimizer.param_groups for p in g['params'])
                 if p.grad is not None}
        bad = non_finite_tensors(grads)
        if bad:
            raise NonFiniteError(
                f'non-finite gradients at iteration {self._iteration()} in {len(bad)} trainable '
                f'parameters, first: {bad[:5]} (loss terms: {_fmt(self._log_vars)}); training '
                'stopped before the optimizer step and before any checkpoint of this state '
                '(lower the learning rate or clip gradients with optim_wrapper.clip_grad)')

    def _check_received(self, optimizer, args, kwargs) -> None:
        if self._received_checked.get(id(optimizer)):
            return  # once per optimizer; the hook is removed in after_train_iter
        self._received_checked[id(optimizer)] = True
        given = [p for g in optimizer.param_groups for p in g['params']
                 if p.requires_grad and p in self._declared]
        missing = [self._names.get(p, f'param {i}') for i, p in enumerate(given)
                   if p.grad is None]
        if missing:
            raise NoGradientError(
                f'{len(missing)} of the {len(given)} trainable tensors of the tuning method '
                f'received no gradient in training iteration {self._iteration()}, first: '
                f'{missing[:5]}; they would never train. Likely causes: the modules their '
                'forward hooks are attached to were replaced after the model was built (model '
                'surgery) or do not run in the forward; the outputs that use them are not used '
                '(out_indices); an option scales them to zero. Training stopped before the '
                'optimizer step (docs/scale.md, "Nothing trains in silence")')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._unused_handles and all(self._received_checked.values()):
            for handle in self._unused_handles:  # checked: nothing runs in later steps
                handle.remove()
            self._unused_handles = []
        if isinstance(outputs, dict) and self._active():
            self._check_log_vars(outputs, 'after the step')

    def after_train(self, runner) -> None:
        self._release()

    def _release(self) -> None:
        for handle in self._handles + self._unused_handles:
            handle.remove()
        self._handles, self._unused_handles = [], []
        model = getattr(self, '_model', None)
        if model is not None and 'parse_losses' in vars(model):
            del model.parse_losses
        self._model = None
