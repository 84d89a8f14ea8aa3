# Demo: E3VA on a ViT-Tiny (DeiT-Ti sizes: 12 layers, 192 channels, 3 heads, 16-pixel patches)
# UperNet trained on the bundled real photos' label maps
# (data/bundled/seg: Pascal VOC, ARC2017 and imgaug's quokka; 13 classes + background).
# Random init, CPU friendly (256x256 crops):
#   mim train mmseg configs/e3va/upernet_e3va-vit-t-p16_mln_40i_bundled-seg-256x256.py
#   python tools/bench.py configs/e3va/upernet_e3va-vit-t-p16_mln_40i_bundled-seg-256x256.py
# Switch method with model.backbone.method: Full, Frozen, Adapter, LoRA, AdaptFormer, LoRand or
# E3VA (docs/e3va_vit.md).
_base_ = [
    'mmseg::_base_/models/upernet_vit-b16_ln_mln.py',
    '../_base_/datasets/bundled_seg.py',
    '../_base_/schedules/bundled_40i.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)

crop_size = (256, 256)
num_classes = {{_base_.num_classes}}
embed_dims = 192
norm_cfg = dict(type='BN', requires_grad=True)  # one process on CPU: plain BN, not SyncBN

model = dict(
    pretrained=None,  # random init: no download
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='TunedBackbone',
        module=dict(
            type='VisionTransformer',
            img_size=crop_size,
            patch_size=16,
            embed_dims=embed_dims,
            num_layers=12,
            num_heads=3,
            mlp_ratio=4,
            out_indices=(2, 5, 8, 11),
            qkv_bias=True,
            drop_path_rate=0.1,
            with_cls_token=True,
            norm_cfg=dict(type='LN', eps=1e-6),
            act_cfg=dict(type='GELU'),
            interpolate_mode='bicubic'),
        method=dict(type='E3VA')),
    neck=dict(in_channels=[embed_dims] * 4, out_channels=embed_dims),
    decode_head=dict(
        in_channels=[embed_dims] * 4,
        channels=128,
        num_classes=num_classes,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=embed_dims, channels=64, num_classes=num_classes, norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations'),  # mmseg's LoadAnnotations; errors name the label map
    dict(type='RandomResize', scale=(427, 320), ratio_range=(0.75, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(427, 320), keep_ratio=True),
    dict(type='LoadSegAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(lr=6e-5, weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            '_delete_': True,  # ViT's no-decay keys instead of Swin's
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5, log_metric_by_epoch=False),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval={{_base_.max_iters}}))
