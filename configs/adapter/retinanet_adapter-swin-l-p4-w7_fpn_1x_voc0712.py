# Adapter (Houlsby): bottleneck-64 adapters after attention and MLP, in the stream.
# RetinaNet, Swin-L, Pascal VOC07+12: the E3VA config of the same setup
# (recipe, data, pretrained trunk); only model.backbone.type changes.
# Reported (SPEC.md section 1): 87.1 AP, 10793 MB.
_base_ = '../e3va/retinanet_e3va-swin-l-p4-w7_fpn_1x_voc0712.py'

model = dict(backbone=dict(type='AdapterSwinTransformer'))
