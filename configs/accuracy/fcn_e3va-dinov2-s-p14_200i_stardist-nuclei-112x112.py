# Real-only sanity row of the accuracy bench (docs/accuracy.md): nucleus / background on tiles of
# StarDist's one real fluorescence image (tools/dataset_converters/stardist_nuclei.py), the same
# DINOv2-S/14 + one-conv head; the score to read is IoU.nucleus (foreground IoU).
#   python tools/accuracy.py configs/accuracy/fcn_e3va-dinov2-s-p14_200i_stardist-nuclei-112x112.py \
#       --methods e3va,full,frozen,adapter,lora --out-dir work_dirs/accuracy_stardist
_base_ = './fcn_e3va-dinov2-s-p14_1k_fmnist-composite-168x168.py'
data_root = 'data/stardist_nuclei/'
classes = ('background', 'nucleus')
crop_size = (112, 112)
model = dict(data_preprocessor=dict(size=crop_size), decode_head=dict(num_classes=2))
_data = dict(data_root=data_root, metainfo=dict(classes=classes))
train_dataloader = dict(dataset=_data)
val_dataloader = dict(dataset=_data)
test_dataloader = dict(dataset=_data)
train_cfg = dict(max_iters=200, val_interval=50)
default_hooks = dict(checkpoint=dict(interval=200))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=200, eta_min_ratio=0.01)
]
