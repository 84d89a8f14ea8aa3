# LoRand: dual low-rank adapters after attention and MLP, in the stream.
# Cascade Mask R-CNN, Swin-B, COCO 3x multi-scale + crop: the E3VA config of the same setup
# (recipe, data, pretrained trunk); only model.backbone.type changes.
# Reported (SPEC.md section 1): 51.0 / 43.9, 13598 MB.
_base_ = '../e3va/cascade-mask-rcnn_e3va-swin-b-p4-w7_fpn_8xb2-ms-crop-3x_coco.py'

model = dict(backbone=dict(type='LoRandSwinTransformer'))
