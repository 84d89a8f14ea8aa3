# Demo: E3VA on a ResNet-50 RetinaNet trained on the bundled real photos
# (data/bundled/coco: Pascal VOC, ARC2017 and imgaug's quokka, 28 real instances).
# Random init, CPU friendly (320x240 images, a 128-channel FPN and head):
#   mim train mmdet configs/e3va/retinanet_e3va-r50_fpn_40i_bundled-coco.py
#   python tools/bench.py configs/e3va/retinanet_e3va-r50_fpn_40i_bundled-coco.py --methods all
# Switch method with model.backbone.method: Full, Frozen, Adapter, LoRand or E3VA (LoRA and
# AdaptFormer do not apply to a ResNet: no linear layers, no MLP). docs/e3va_resnet.md.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/bundled_coco_detection.py',
    '../_base_/schedules/bundled_40i.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)

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
    bbox_head=dict(num_classes={{_base_.num_classes}}, in_channels=128, feat_channels=128,
                   stacked_convs=2))

optim_wrapper = dict(
    paramwise_cfg=None,  # Swin's no-decay keys do not apply
    clip_grad=dict(max_norm=35, norm_type=2))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='AtomicCheckpointHook', interval={{_base_.max_iters}}, by_epoch=False))
log_processor = dict(by_epoch=False)
