# Partial-1: only the last Swin block trains (12.60 M on Swin-B, 28.34 M on Swin-L); the
# frozen blocks before it run without autograd (docs/methods/partial.md).
# RetinaNet, Swin-L, Pascal VOC07+12: the E3VA config of the same setup
# (recipe, data, pretrained trunk); only model.backbone.type changes.
# Reported (V-PETL Bench README, dense prediction tables): 85.4 AP, 3943 MB.
_base_ = '../e3va/retinanet_e3va-swin-l-p4-w7_fpn_1x_voc0712.py'

model = dict(backbone=dict(type='PartialSwinTransformer'))
