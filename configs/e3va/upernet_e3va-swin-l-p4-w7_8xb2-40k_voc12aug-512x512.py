# E3VA, UperNet, Swin-L (ImageNet-22k), Pascal VOC 2012 + aug (mmseg's voc12aug base), 512x512
# crops, 40k iterations (mmseg's VOC UperNet schedule length) with the Swin recipe's AdamW 6e-5, wd 0.01,
# poly after a 1500-iteration warm-up; 8 GPUs x 2 images = 16 per step. SPEC.md section 1.
# Pretrained trunk (official release, converted by the loader):
#   wget -P checkpoints \
#     https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window7_224_22k.pth
# Data: data/VOCdevkit/VOC2012 with SegmentationClassAug (mmseg layout, see mmseg's dataset docs).
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)

crop_size = (512, 512)
embed_dims = 192
num_classes = 21
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        type='E3VASwinTransformer',
        pretrain_img_size=224,
        embed_dims=embed_dims,
        depths=[2, 2, 18, 2],
        num_heads=[6, 12, 24, 48],
        window_size=7,
        use_abs_pos_embed=False,
        drop_path_rate=0.3,
        patch_norm=True,
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/swin_large_patch4_window7_224_22k.pth')),
    decode_head=dict(in_channels=[embed_dims * 2**i for i in range(4)], num_classes=num_classes),
    auxiliary_head=dict(in_channels=embed_dims * 4, num_classes=num_classes))

max_iters = 40000
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='TrainableOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=max_iters, by_epoch=False),
]
train_dataloader = dict(batch_size=2)
custom_hooks = [dict(type='FiniteLossHook'), dict(type='TrainingCostHook')]
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', save_adapter=True))
