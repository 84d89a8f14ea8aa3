# Demo: E3VA on a ResNet-50 RetinaNet trained on the bundled real photos
# (data/bundled/coco: Pascal VOC, ARC2017 and imgaug's quokka, 28 real instances).
# Random init, CPU friendly (320x240 images, a 128-channel FPN and head):
#   mim train mmdet configs/e3va/retinanet_e3va-r50_fpn_40i_bundled-coco.py
#   python tools/bench.py configs/e3va/retinanet_e3va-r50_fpn_40i_bundled-coco.py --methods all
# Switch method with model.backbone.method: Full, Frozen, Adapter, LoRand or E3VA (LoRA and
# AdaptFormer do not apply to a ResNet: no linear layers, no MLP). docs/e3va_resnet.md.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)

data_root = '{{fileDirname}}/../../data/bundled/coco/'
# Same order as data/bundled/coco/classes.txt (written by tools/convert_bundled_data.py).
classes = ('animal', 'bottle', 'burts_bees_baby_wipes', 'chair', 'diningtable', 'fiskars_scissors',
           'hanes_socks', 'ice_cube_tray', 'irish_spring_soap', 'laugh_out_loud_jokes',
           'measuring_spoons', 'mouse_traps', 'person')
img_scale = (320, 240)

model = dict(
    backbone=dict(
        _delete_=True,
        type='TunedBackbone',
        module=dict(
            type='ResNet',
            depth=50,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            frozen_stages=-1,  # the frozen-trunk methods freeze everything themselves
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=True,
            style='pytorch',
            # Random init (no download): mmdet's zero-init of the last norm of every residual
            # branch would make every branch output, and so every E3VA tap, zero.
            zero_init_residual=False),
        method=dict(type='E3VA')),
    neck=dict(out_channels=128),
    bbox_head=dict(num_classes=len(classes), in_channels=128, feat_channels=128,
                   stacked_convs=2))

backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
dataset = dict(
    type='ValidatedCocoDataset',  # mmdet's CocoDataset that reports the boxes it drops
    data_root=data_root,
    metainfo=dict(classes=classes),
    ann_file='annotations/instances.json',
    data_prefix=dict(img='images/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=8),
    backend_args=backend_args)
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(dataset, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator

max_iters = 40
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10)]
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='TrainableOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2))
custom_hooks = [dict(type='FiniteLossHook'), dict(type='TrainingCostHook')]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='AtomicCheckpointHook', interval=max_iters, by_epoch=False))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
