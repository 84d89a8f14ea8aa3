# BitFit: only the trunk's biases (and relative position bias tables) train: 0.20 M on
# Swin-B, 0.30 M on Swin-L (docs/methods/bitfit.md).
# UperNet, Swin-L, Pascal VOC 2012 + aug 512x512: the E3VA config of the same setup
# (recipe, data, pretrained trunk); only model.backbone.type changes.
_base_ = '../e3va/upernet_e3va-swin-l-p4-w7_8xb2-40k_voc12aug-512x512.py'

model = dict(backbone=dict(type='BitFitSwinTransformer'))
