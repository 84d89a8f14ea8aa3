# E3VA, Cascade Mask R-CNN, Swin-L (ImageNet-22k), otherwise as the Swin-B config.
# Pretrained trunk (official release, converted by the loader):
#   wget -P checkpoints \
#     https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window7_224_22k.pth
_base_ = './cascade-mask-rcnn_e3va-swin-b-p4-w7_fpn_8xb2-ms-crop-3x_coco.py'

pretrained = 'checkpoints/swin_large_patch4_window7_224_22k.pth'
embed_dims = 192
model = dict(
    backbone=dict(
        embed_dims=embed_dims,
        num_heads=[6, 12, 24, 48],
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[embed_dims * 2**i for i in range(4)]))
