# BitFit: only the trunk's biases (and relative position bias tables) train: 0.20 M on
# Swin-B, 0.30 M on Swin-L (docs/methods/bitfit.md).
# Cascade Mask R-CNN, Swin-B, COCO 3x multi-scale + crop: the E3VA config of the same setup
# (recipe, data, pretrained trunk); only model.backbone.type changes.
# Reported (V-PETL Bench README, dense prediction tables): 47.9 box AP / 41.9 mask AP, 13657 MB.
_base_ = '../e3va/cascade-mask-rcnn_e3va-swin-b-p4-w7_fpn_8xb2-ms-crop-3x_coco.py'

model = dict(backbone=dict(type='BitFitSwinTransformer'))
