# BitFit: only the trunk's biases (and relative position bias tables) train: 0.20 M on
# Swin-B, 0.30 M on Swin-L (docs/methods/bitfit.md).
# RetinaNet, Swin-L, Pascal VOC07+12: the E3VA config of the same setup
# (recipe, data, pretrained trunk); only model.backbone.type changes.
# Reported (V-PETL Bench README, dense prediction tables): 85.7 AP, 10861 MB.
_base_ = '../e3va/retinanet_e3va-swin-l-p4-w7_fpn_1x_voc0712.py'

model = dict(backbone=dict(type='BitFitSwinTransformer'))
