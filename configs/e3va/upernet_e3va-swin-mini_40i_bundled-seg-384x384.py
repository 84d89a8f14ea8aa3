# Demo: a small E3VA UperNet trained on the bundled real photos' label maps
# (data/bundled/seg: Pascal VOC, ARC2017 and imgaug's quokka; 13 classes + background).
# Random init, CPU friendly:
#   mim train mmseg configs/e3va/upernet_e3va-swin-mini_40i_bundled-seg-384x384.py
#   python tools/bench.py configs/e3va/upernet_e3va-swin-mini_40i_bundled-seg-384x384.py
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    '../_base_/datasets/bundled_seg.py',
    '../_base_/schedules/bundled_40i.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)

crop_size = {{_base_.crop_size}}
num_classes = {{_base_.num_classes}}
embed_dims = 64
norm_cfg = dict(type='BN', requires_grad=True)  # one process on CPU: plain BN, not SyncBN

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        type='E3VASwinTransformer',
        embed_dims=embed_dims,
        depths=(2, 2, 6, 2),
        num_heads=(2, 4, 8, 16),
        window_size=7,
        drop_path_rate=0.1),
    decode_head=dict(
        in_channels=[embed_dims * 2**i for i in range(4)],
        channels=128,
        num_classes=num_classes,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=embed_dims * 4, channels=64, num_classes=num_classes, norm_cfg=norm_cfg))

optim_wrapper = dict(optimizer=dict(lr=6e-5, weight_decay=0.01))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5, log_metric_by_epoch=False),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval={{_base_.max_iters}}))
