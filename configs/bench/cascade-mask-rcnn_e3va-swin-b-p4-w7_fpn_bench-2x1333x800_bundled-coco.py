# Paper-size bench (docs/bench_paper_scale.md): the COCO Cascade Mask R-CNN Swin-B of E3VA
# (4conv1fc GIoU bbox heads, FPN, 80 classes) at the paper's per-GPU load, 2 images of 1333x800,
# on the bundled real photos with random init. Memory only: never trained in tests.
#   python tools/bench.py \
#       configs/bench/cascade-mask-rcnn_e3va-swin-b-p4-w7_fpn_bench-2x1333x800_bundled-coco.py \
#       --methods full,frozen,adapter,lora,adaptformer,lorand,e3va --steps 1 --warmup 1
# bench switches the method through model.backbone.type, as for every Swin config.
_base_ = ['../e3va/cascade-mask-rcnn_e3va-swin-b-p4-w7_fpn_8xb2-ms-crop-3x_coco.py']

model = dict(backbone=dict(init_cfg=None))  # random init: memory depends on shapes only

data_root = '{{fileDirname}}/../../data/bundled/coco/'
classes = ('animal', 'bottle', 'burts_bees_baby_wipes', 'chair', 'diningtable', 'fiskars_scissors',
           'hanes_socks', 'ice_cube_tray', 'irish_spring_soap', 'laugh_out_loud_jokes',
           'measuring_spoons', 'mouse_traps', 'person')  # labels 0-12 of the 80-class heads
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    # the largest multi-scale size of the recipe, for every image
    dict(type='Resize', scale=(1333, 800), keep_ratio=False),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='CocoDataset',
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='annotations/instances.json',
        data_prefix=dict(img='images/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
custom_hooks = [dict(type='FiniteLossHook')]  # the non-finite guard; cost comes from tools/bench.py
