# M2IST on TransVG-R50 (docs/m2ist.md): ResNet-50 + 6-layer DETR encoder (d=256) from TransVG's
# DETR-R50 checkpoint, BERT-base-uncased from a local folder, six M3ISAs, 6-layer VL encoder.
# Switch the tuning method with model.method: 'm2ist' | 'adapter' | 'full' (the options of each
# are side_network and adapter_bottleneck; or give method=dict(type='M2IST', bottleneck=...)).

max_tokens = 20  # 40 for RefCOCOg
model = dict(
    type='M2ISTGrounder',
    method='m2ist',
    data_preprocessor=dict(
        type='GroundingDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='DETRVisionEncoder',
        resnet=dict(
            type='mmdet.ResNet',
            depth=50,
            num_stages=4,
            out_indices=(3, ),
            frozen_stages=1,
            norm_cfg=dict(type='BN', requires_grad=False),
            norm_eval=True,
            style='pytorch'),
        embed_dims=256,
        num_layers=6,
        num_heads=8,
        feedforward_channels=2048,
        dropout=0.1,
        checkpoint='checkpoints/detr-r50-unc.pth'),
    language_model=dict(
        type='BertLanguageModel', name_or_path='checkpoints/bert-base-uncased',
        max_tokens=max_tokens),
    side_network=dict(bottleneck=128, scale=0.1),  # M3ISA sizes (method='m2ist')
    text_layers=None,  # first 6 BERT layers (UNVERIFIED pairing, see M2ISTGrounder)
    adapter_bottleneck=128,  # serial adapters' width (method='adapter')
    neck=dict(
        type='GroundingVLEncoder',
        num_text_tokens=max_tokens,
        num_visual_tokens=400,  # (640 / 32) ** 2
        embed_dims=256,
        num_layers=6,
        num_heads=8,
        feedforward_channels=2048,
        dropout=0.1),
    bbox_head=dict(
        type='GroundingBoxHead',
        embed_dims=256,
        smooth_l1=False,
        loss_giou=dict(type='mmdet.GIoULoss', loss_weight=1.0)))
