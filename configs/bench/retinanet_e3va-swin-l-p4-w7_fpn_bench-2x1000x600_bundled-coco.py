# Paper-size bench (docs/bench_paper_scale.md): the Pascal VOC RetinaNet Swin-L of E3VA (FPN from
# stages 1-3, 20 classes) at the paper's per-GPU load, 2 images of 1000x600, on the bundled real
# photos (boxes only) with random init. Memory only: never trained in tests.
#   python tools/bench.py \
#       configs/bench/retinanet_e3va-swin-l-p4-w7_fpn_bench-2x1000x600_bundled-coco.py \
#       --methods full,frozen,adapter,lora,adaptformer,lorand,e3va --steps 1 --warmup 1
_base_ = ['../e3va/retinanet_e3va-swin-l-p4-w7_fpn_1x_voc0712.py']

model = dict(backbone=dict(init_cfg=None))  # random init: memory depends on shapes only

data_root = '{{fileDirname}}/../../data/bundled/coco/'
classes = ('animal', 'bottle', 'burts_bees_baby_wipes', 'chair', 'diningtable', 'fiskars_scissors',
           'hanes_socks', 'ice_cube_tray', 'irish_spring_soap', 'laugh_out_loud_jokes',
           'measuring_spoons', 'mouse_traps', 'person')  # labels 0-12 of the 20-class head
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1000, 600), keep_ratio=False),
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
