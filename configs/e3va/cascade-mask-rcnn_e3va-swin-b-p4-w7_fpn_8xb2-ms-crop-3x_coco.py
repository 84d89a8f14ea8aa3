# E3VA, Cascade Mask R-CNN, Swin-B (ImageNet-22k), FPN, COCO 3x with multi-scale 480-800 + DETR-style
# crop; 4conv1fc bbox heads with GIoU loss; AdamW 1e-4, wd 0.05; 8 GPUs x 2 images = 16 per step.
# SPEC.md section 1 (arXiv 2306.09729). Reported: 50.5 box AP / 43.8 mask AP, 7639 MB per GPU.
#
# Pretrained trunk: the official Swin release, converted to mmdet's key layout by the loader:
#   mkdir -p checkpoints && wget -P checkpoints \
#     https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window7_224_22k.pth
# Data: COCO 2017 under data/coco/ (mmdet layout). Switch method by model.backbone.type:
# FullSwinTransformer, FrozenSwinTransformer, AdapterSwinTransformer, LoRASwinTransformer,
# AdaptFormerSwinTransformer, LoRandSwinTransformer, E3VASwinTransformer (docs/methods/).
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)

pretrained = 'checkpoints/swin_base_patch4_window7_224_22k.pth'
embed_dims = 128
model = dict(
    backbone=dict(
        _delete_=True,
        type='E3VASwinTransformer',
        embed_dims=embed_dims,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[embed_dims * 2**i for i in range(4)]),
    roi_head=dict(bbox_head=[
        dict(
            type='ConvFCBBoxHead',
            num_shared_convs=4,
            num_shared_fcs=1,
            in_channels=256,
            conv_out_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=80,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0., 0., 0., 0.],
                target_stds=stds),
            reg_class_agnostic=False,
            reg_decoded_bbox=True,
            norm_cfg=dict(type='SyncBN', requires_grad=True),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
        for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
    ]))

# Multi-scale 480-800 training with DETR-style random crop (as mmdet's Swin ms-crop-3x configs).
ms_scales = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333),
             (672, 1333), (704, 1333), (736, 1333), (768, 1333), (800, 1333)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=ms_scales, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)],
                     keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                     allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=ms_scales, keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
# mmdet's CocoDataset that reports the boxes it drops as degenerate (mmsidetune.datasets)
train_dataloader = dict(
    batch_size=2, dataset=dict(type='ValidatedCocoDataset', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type='ValidatedCocoDataset'))
test_dataloader = val_dataloader

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33],
         gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='TrainableOptimWrapperConstructor',
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
        }),
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
auto_scale_lr = dict(enable=False, base_batch_size=16)
custom_hooks = [dict(type='FiniteLossHook'), dict(type='TrainingCostHook')]

# Checkpoints survive a kill during save, also written adapter-only (adapter_*.pth, ~1 % of
# the trunk), and --resume trusts this run's own files (docs/scale.md).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', save_adapter=True))
