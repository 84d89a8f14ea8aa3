# Shared data settings of the M2IST dataset configs (docs/m2ist.md, docs/refexp_data.md).
# Not used alone: refcoco.py, refcoco+.py, refcocog-umd.py, refcocog-google.py and referit.py
# inherit it and name their split files. Layout under data_root (docs/refexp_data.md), as TransVG's:
#   data/refexp/split/data/<ds>/<ds>_<split>.pth            TransVG/ReSC split files
#   data/refexp/ln_data/other/images/mscoco/images/train2014/  COCO train2014 (RefCOCO/+/g)
#   data/refexp/ln_data/referit/images/                      ReferItGame (SAIAPR TC-12) images
# Variables for the model configs: max_text_len (tokens incl. [CLS]/[SEP]: 20, 40 for RefCOCOg)
# and pad_size (canvas side, 640 -> 20x20 = 400 visual tokens at stride 32).
dataset_type = 'RefExpDataset'
data_root = 'data/refexp/'
coco_img_prefix = 'ln_data/other/images/mscoco/images/train2014/'
referit_img_prefix = 'ln_data/referit/images/'
max_text_len = 20
pad_size = 640
backend_args = None

# Long side resized to one of 640, 608, ..., 448 (keep_ratio with a square scale = long side).
long_side_scales = [(s, s) for s in range(640, 447, -32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    # Phrases naming a direction always take branch 0 (resize only).
    dict(
        type='DirectionAwareRandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=long_side_scales, keep_ratio=True,
                  resize_type='mmdet.Resize')],
            [dict(type='RandomChoiceResize', scales=[400, 500, 600],
                  resize_type='mmdet.ResizeShortestEdge'),
             dict(type='RandomCropKeepBox', min_size=384, max_size=600),
             dict(type='RandomChoiceResize', scales=long_side_scales, keep_ratio=True,
                  resize_type='mmdet.Resize')],
        ],
        prob=[0.5, 0.5]),
    # torchvision ColorJitter(0.4, 0.4, 0.4) with p=0.8: factors in [0.6, 1.4], random order.
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

# Batch 64 = 8 GPUs x 8.
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path=coco_img_prefix),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path=coco_img_prefix),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# Acc@0.5 in %, per split when the test set concatenates several (key '<split>/Acc@0.5').
val_evaluator = dict(type='GroundingAccuracy', iou_thr=0.5)
test_evaluator = val_evaluator
