# The bundled real photos in COCO layout, boxes only (data/bundled/coco: Pascal VOC, ARC2017 and
# imgaug's quokka, 28 real instances; written by tools/convert_bundled_data.py). CPU friendly:
# 320x240 images, 2 per step, no workers. Masks: bundled_coco_instance.py. A child that changes
# train_pipeline / test_pipeline sets them again in the dataloaders, as mmdet's configs do.
data_root = '{{fileDirname}}/../../../data/bundled/coco/'
# Same order as data/bundled/coco/classes.txt.
classes = ('animal', 'bottle', 'burts_bees_baby_wipes', 'chair', 'diningtable', 'fiskars_scissors',
           'hanes_socks', 'ice_cube_tray', 'irish_spring_soap', 'laugh_out_loud_jokes',
           'measuring_spoons', 'mouse_traps', 'person')
num_classes = len(classes)
img_scale = (320, 240)
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
