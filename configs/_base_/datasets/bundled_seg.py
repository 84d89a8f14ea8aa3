# The bundled real photos' label maps (data/bundled/seg: Pascal VOC, ARC2017 and imgaug's quokka;
# 13 classes + background; written by tools/convert_bundled_data.py). CPU friendly: 384x384 crops
# of 640x480 images, 2 per step, no workers. A child that changes train_pipeline / test_pipeline
# sets them again in the dataloaders, as mmseg's configs do.
data_root = '{{fileDirname}}/../../../data/bundled/seg/'
# data/bundled/seg/classes.txt, label value = line index.
classes = ('background', 'animal', 'bottle', 'burts_bees_baby_wipes', 'chair', 'diningtable',
           'fiskars_scissors', 'hanes_socks', 'ice_cube_tray', 'irish_spring_soap',
           'laugh_out_loud_jokes', 'measuring_spoons', 'mouse_traps', 'person')
num_classes = len(classes)
crop_size = (384, 384)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations'),  # mmseg's LoadAnnotations; errors name the label map
    dict(type='RandomResize', scale=(640, 480), ratio_range=(0.75, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(640, 480), keep_ratio=True),
    dict(type='LoadSegAnnotations'),
    dict(type='PackSegInputs'),
]
dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=dict(classes=classes),
    data_prefix=dict(img_path='images', seg_map_path='labels'),
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=False)
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(dataset, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
