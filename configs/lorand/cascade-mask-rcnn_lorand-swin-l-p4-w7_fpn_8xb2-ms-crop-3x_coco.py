# LoRand: dual low-rank adapters after attention and MLP, in the stream.
# Cascade Mask R-CNN, Swin-L, COCO 3x multi-scale + crop: the E3VA config of the same setup
# (recipe, data, pretrained trunk); model.backbone.type and the bottleneck width change.
_base_ = '../e3va/cascade-mask-rcnn_e3va-swin-l-p4-w7_fpn_8xb2-ms-crop-3x_coco.py'

# A fixed 64-wide bottleneck gives the published Swin-L LoRand budget (1.31 M); see
# LoRandSwinTransformer.
model = dict(backbone=dict(type='LoRandSwinTransformer', adapter_hidden_dims=64))
