# Partial-1: only the last Swin block trains (12.60 M on Swin-B, 28.34 M on Swin-L); the
# frozen blocks before it run without autograd (docs/methods/partial.md).
# UperNet, Swin-L, Pascal VOC 2012 + aug 512x512: the E3VA config of the same setup
# (recipe, data, pretrained trunk); only model.backbone.type changes.
_base_ = '../e3va/upernet_e3va-swin-l-p4-w7_8xb2-40k_voc12aug-512x512.py'

model = dict(backbone=dict(type='PartialSwinTransformer'))
