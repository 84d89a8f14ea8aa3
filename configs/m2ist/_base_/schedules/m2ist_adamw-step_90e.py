# M2IST / TransVG recipe (docs/m2ist.md): AdamW wd 1e-4; lr 1e-4 for the VL encoder, [REG],
# positions, projections and head; 1e-5 (lr_mult 0.1) for the adapters (M3ISA side network or
# serial adapters) and, under full fine-tuning, for the encoders (TransVG's lr_bert /
# lr_visu_cnn / lr_visu_tra). Step decay x0.1 at epoch 60 of 90; no warm-up; fp32.
# Keeps the checkpoint with the best val Acc@0.5.
_base_ = 'mmdet::_base_/default_runtime.py'

max_epochs = 90
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    constructor='TrainableOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    paramwise_cfg=dict(
        custom_keys={
            'side_network': dict(lr_mult=0.1),
            'adapters': dict(lr_mult=0.1),
            'backbone': dict(lr_mult=0.1),
            'language_model': dict(lr_mult=0.1),
        }))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=[60], gamma=0.1)
]
default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2, save_best='Acc@0.5',
        save_adapter=True,
        rule='greater'))
# Stops at the first non-finite loss / gradient, before it reaches a checkpoint (docs/scale.md).
custom_hooks = [dict(type='FiniteLossHook')]
# 64 images per iteration in the paper: 8 GPUs x 8.
auto_scale_lr = dict(enable=False, base_batch_size=64)
