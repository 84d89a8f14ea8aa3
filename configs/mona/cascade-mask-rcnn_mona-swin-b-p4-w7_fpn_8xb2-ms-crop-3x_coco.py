# Mona: two multi-cognitive visual adapters per block, after attention and after the MLP
# (docs/methods/mona.md).
# Cascade Mask R-CNN, Swin-B, COCO 3x multi-scale + crop: the E3VA config of the same setup
# (recipe, data, pretrained trunk); only model.backbone.type changes.
# Reported (V-PETL Bench README, dense prediction tables): 53.4 box AP / 46.0 mask AP, 13996 MB.
_base_ = '../e3va/cascade-mask-rcnn_e3va-swin-b-p4-w7_fpn_8xb2-ms-crop-3x_coco.py'

model = dict(backbone=dict(type='MonaSwinTransformer'))
