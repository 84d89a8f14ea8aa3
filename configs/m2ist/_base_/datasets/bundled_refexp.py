# Bundled demo data: expressions written for this project for real boxes of the three bundled
# photos (data/bundled/refexp/README.md). train: 33 expressions (voc, arc2017); val: 19 (all three
# photos; quokka.jpg is never in train). The paper recipe (docs/m2ist.md) with every size halved:
# canvas 320, long side {320, 304, ..., 224}, short side {200, 250, 300}, crop sides [192, 300].
# Variables for the model configs: max_text_len, pad_size.
dataset_type = 'RefExpDataset'
data_root = '{{fileDirname}}/../../../../data/bundled/'
max_text_len = 20
pad_size = 320
backend_args = None

long_side_scales = [(s, s) for s in range(320, 223, -16)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(
        type='DirectionAwareRandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=long_side_scales, keep_ratio=True,
                  resize_type='mmdet.Resize')],
            [dict(type='RandomChoiceResize', scales=[200, 250, 300],
                  resize_type='mmdet.ResizeShortestEdge'),
             dict(type='RandomCropKeepBox', min_size=192, max_size=300),
             dict(type='RandomChoiceResize', scales=long_side_scales, keep_ratio=True,
                  resize_type='mmdet.Resize')],
        ],
        prob=[0.5, 0.5]),
    dict(
        type='RandomApply',
        prob=0.8,
        transforms=[dict(type='mmdet.RandomOrder', transforms=[
            dict(type='mmdet.Brightness', min_mag=0.6, max_mag=1.4),
            dict(type='mmdet.Contrast', min_mag=0.6, max_mag=1.4),
            dict(type='mmdet.Color', min_mag=0.6, max_mag=1.4),
        ])]),
    dict(type='RandomFlipPhrase', prob=0.5),
    dict(type='GroundingPad', size=(pad_size, pad_size), random_offset=True),
    dict(type='PackGroundingInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(type='mmdet.Resize', scale=(pad_size, pad_size), keep_ratio=True),
    dict(type='GroundingPad', size=(pad_size, pad_size), random_offset=False),
    dict(type='PackGroundingInputs'),
]
dataset = dict(
    type=dataset_type,
    data_root=data_root,
    dataset_key='unc',  # COCO xywh boxes, like RefCOCO
    ann_format='json',
    data_prefix=dict(img_path='coco/images/'))
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(dataset, ann_file='refexp/refexp_train.json', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, ann_file='refexp/refexp_val.json', test_mode=True,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='GroundingAccuracy', iou_thr=0.5)
test_evaluator = val_evaluator
