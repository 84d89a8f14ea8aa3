# Paper-size bench (docs/bench_paper_scale.md): the ADE20K UperNet Swin-L of E3VA (150 classes) at
# the paper's per-GPU load, 2 crops of 512x512, on the bundled real photos and label maps with
# random init. Memory only: never trained in tests.
#   python tools/bench.py configs/bench/upernet_e3va-swin-l-p4-w7_bench-2x512x512_bundled-seg.py \
#       --methods full,frozen,adapter,lora,adaptformer,lorand,e3va --steps 1 --warmup 1
_base_ = ['../e3va/upernet_e3va-swin-l-p4-w7_8xb2-160k_ade20k-512x512.py']

norm_cfg = dict(type='BN', requires_grad=True)  # one process on CPU: plain BN, not SyncBN
model = dict(
    backbone=dict(init_cfg=None),  # random init: memory depends on shapes only
    decode_head=dict(norm_cfg=norm_cfg),
    auxiliary_head=dict(norm_cfg=norm_cfg))

data_root = '{{fileDirname}}/../../data/bundled/seg/'
classes = ('background', 'animal', 'bottle', 'burts_bees_baby_wipes', 'chair', 'diningtable',
           'fiskars_scissors', 'hanes_socks', 'ice_cube_tray', 'irish_spring_soap',
           'laugh_out_loud_jokes', 'measuring_spoons', 'mouse_traps', 'person')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=(512, 512), keep_ratio=False),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='BaseSegDataset',
        data_root=data_root,
        metainfo=dict(classes=classes),  # labels 0-13 of the 150-class heads
        data_prefix=dict(img_path='images', seg_map_path='labels'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        pipeline=train_pipeline))
custom_hooks = [dict(type='FiniteLossHook')]  # the non-finite guard; cost comes from tools/bench.py
