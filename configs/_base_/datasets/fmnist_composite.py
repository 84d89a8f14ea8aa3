# The Fashion-MNIST composite segmentation set: real Fashion-MNIST product images pasted at 2-3x
# onto crops of real photos (opencv-doc's sample photos); label = the items' silhouettes, 10
# classes + background. Written by tools/dataset_converters/fashion_mnist_composite.py
# (docs/accuracy.md). Splits: train (training), dev (validation during training and learning-rate
# choice: val_dataloader), val (held-out photos and Fashion-MNIST test items: test_dataloader).
data_root = 'data/fmnist_composite/'
classes = ('background', 'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
           'Sneaker', 'Bag', 'Ankle boot')
num_classes = len(classes)
crop_size = (168, 168)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations'),
    dict(type='PackSegInputs'),
]
dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=dict(classes=classes),
    img_suffix='.png',
    seg_map_suffix='.png',
    reduce_zero_label=False)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(dataset, data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, data_prefix=dict(img_path='img_dir/dev', seg_map_path='ann_dir/dev'),
                 pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
                 pipeline=test_pipeline))
val_evaluator = dict(type='ConfusionIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
