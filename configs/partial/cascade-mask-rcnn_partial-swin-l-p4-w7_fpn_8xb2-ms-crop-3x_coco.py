# Partial-1: only the last Swin block trains (12.60 M on Swin-B, 28.34 M on Swin-L); the
# frozen blocks before it run without autograd (docs/methods/partial.md).
# Cascade Mask R-CNN, Swin-L, COCO 3x multi-scale + crop: the E3VA config of the same setup
# (recipe, data, pretrained trunk); only model.backbone.type changes.
_base_ = '../e3va/cascade-mask-rcnn_e3va-swin-l-p4-w7_fpn_8xb2-ms-crop-3x_coco.py'

model = dict(backbone=dict(type='PartialSwinTransformer'))
