# Accuracy bench (docs/accuracy.md): DINOv2-S/14 from converted pretrained weights, one-conv head,
# on the Fashion-MNIST composite set (168 x 168, batch 4). The method (here E3VA) is switched by
#   python tools/accuracy.py configs/accuracy/fcn_e3va-dinov2-s-p14_1k_fmnist-composite-168x168.py
# which also sweeps optimizer.lr per method; training alone:
#   python tools/train.py configs/accuracy/fcn_e3va-dinov2-s-p14_1k_fmnist-composite-168x168.py
_base_ = [
    '../_base_/models/fcn_dinov2-s-p14.py',
    '../_base_/datasets/fmnist_composite.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)
crop_size = (168, 168)
model = dict(data_preprocessor=dict(size=crop_size))

max_iters = 1000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=250)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min_ratio=0.01)
]
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='TrainableOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
            'ln': dict(decay_mult=0.)
        }))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=max_iters))
custom_hooks = [dict(type='FiniteLossHook')]
randomness = dict(seed=0)
