# Mona: two multi-cognitive visual adapters per block, after attention and after the MLP
# (docs/methods/mona.md).
# RetinaNet, Swin-L, Pascal VOC07+12: the E3VA config of the same setup
# (recipe, data, pretrained trunk); only model.backbone.type changes.
# Reported (V-PETL Bench README, dense prediction tables): 87.3 AP, 11958 MB.
_base_ = '../e3va/retinanet_e3va-swin-l-p4-w7_fpn_1x_voc0712.py'

model = dict(backbone=dict(type='MonaSwinTransformer'))
