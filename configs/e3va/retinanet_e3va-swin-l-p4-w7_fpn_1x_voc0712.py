# E3VA, RetinaNet, Swin-L (ImageNet-22k), FPN from stages 1-3 with extra convs on the input,
# Pascal VOC07+12 trainval repeated 3x (mmdet's voc0712 base), 1000x600, 4 epochs (12 effective),
# AdamW 1e-4, wd 0.05; 8 GPUs x 2 images. SPEC.md section 1 (arXiv 2306.09729). Reported: 86.5 AP (VOC07 test),
# 4819 MB per GPU.
# Pretrained trunk (official release, converted by the loader):
#   wget -P checkpoints \
#     https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window7_224_22k.pth
# Data: data/VOCdevkit/VOC2007 and VOC2012 (mmdet layout). Switch method by model.backbone.type
# (configs/<method>/ holds the same setup for every method).
_base_ = ['mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py']
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)

pretrained = 'checkpoints/swin_large_patch4_window7_224_22k.pth'
embed_dims = 192
model = dict(
    backbone=dict(
        _delete_=True,
        type='E3VASwinTransformer',
        embed_dims=embed_dims,
        depths=[2, 2, 18, 2],
        num_heads=[6, 12, 24, 48],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.2,
        patch_norm=True,
        out_indices=(1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    # stages 1-3 (strides 8/16/32) -> P3-P5, plus P6/P7 from extra convs on the input
    neck=dict(in_channels=[embed_dims * 2**i for i in (1, 2, 3)], start_level=0,
              add_extra_convs='on_input', num_outs=5))

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end={{_base_.max_epochs}}, by_epoch=True, milestones=[3],
         gamma=0.1),
]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='TrainableOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
        }))
custom_hooks = [dict(type='FiniteLossHook'), dict(type='TrainingCostHook')]
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', save_adapter=True))
