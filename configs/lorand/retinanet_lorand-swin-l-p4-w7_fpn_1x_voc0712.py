# LoRand: dual low-rank adapters after attention and MLP, in the stream.
# RetinaNet, Swin-L, Pascal VOC07+12: the E3VA config of the same setup
# (recipe, data, pretrained trunk); model.backbone.type and the bottleneck width change.
# Reported (SPEC.md section 1): 86.8 AP, 11572 MB.
_base_ = '../e3va/retinanet_e3va-swin-l-p4-w7_fpn_1x_voc0712.py'

# A fixed 64-wide bottleneck gives the published Swin-L LoRand budget (1.31 M); see
# LoRandSwinTransformer.
model = dict(backbone=dict(type='LoRandSwinTransformer', adapter_hidden_dims=64))
