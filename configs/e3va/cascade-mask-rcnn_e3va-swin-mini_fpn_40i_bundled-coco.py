# Demo: a small E3VA Cascade Mask R-CNN trained on the bundled real photos
# (data/bundled/coco: Pascal VOC, ARC2017 and imgaug's quokka, 28 real instance masks).
# Random init, CPU friendly:
#   mim train mmdet configs/e3va/cascade-mask-rcnn_e3va-swin-mini_fpn_40i_bundled-coco.py
# and the default config of `tools/bench.py`. Switch method by changing model.backbone.type:
# FullSwinTransformer, FrozenSwinTransformer, AdapterSwinTransformer, LoRASwinTransformer,
# AdaptFormerSwinTransformer, LoRandSwinTransformer, E3VASwinTransformer (docs/methods/).
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    '../_base_/datasets/bundled_coco_instance.py',
    '../_base_/schedules/bundled_40i.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)

num_classes = {{_base_.num_classes}}
embed_dims = 64

model = dict(
    backbone=dict(
        _delete_=True,
        type='E3VASwinTransformer',
        embed_dims=embed_dims,
        depths=(2, 2, 6, 2),
        num_heads=(2, 4, 8, 16),
        window_size=7,
        mlp_ratio=4,
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[embed_dims * 2**i for i in range(4)], out_channels=128),
    rpn_head=dict(in_channels=128, feat_channels=128),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128),
        bbox_head=[
            dict(
                type='Shared2FCBBoxHead',
                in_channels=128,
                fc_out_channels=256,
                roi_feat_size=7,
                num_classes=num_classes,
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder',
                    target_means=[0., 0., 0., 0.],
                    target_stds=stds),
                reg_class_agnostic=True,
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
            for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                         [0.033, 0.033, 0.067, 0.067])
        ],
        mask_roi_extractor=dict(out_channels=128),
        mask_head=dict(in_channels=128, conv_out_channels=128, num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=[
            dict(
                assigner=dict(
                    type='MaxIoUAssigner',
                    pos_iou_thr=iou,
                    neg_iou_thr=iou,
                    min_pos_iou=iou,
                    match_low_quality=False,
                    ignore_iof_thr=-1),
                sampler=dict(
                    type='RandomSampler',
                    num=128,
                    pos_fraction=0.25,
                    neg_pos_ub=-1,
                    add_gt_as_proposals=True),
                mask_size=28,
                pos_weight=-1,
                debug=False) for iou in (0.5, 0.6, 0.7)
        ]),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='AtomicCheckpointHook', interval={{_base_.max_iters}}, by_epoch=False))
log_processor = dict(by_epoch=False)
