# Mona: two multi-cognitive visual adapters per block, after attention and after the MLP
# (docs/methods/mona.md).
# Cascade Mask R-CNN, Swin-L, COCO 3x multi-scale + crop: the E3VA config of the same setup
# (recipe, data, pretrained trunk); only model.backbone.type changes.
_base_ = '../e3va/cascade-mask-rcnn_e3va-swin-l-p4-w7_fpn_8xb2-ms-crop-3x_coco.py'

model = dict(backbone=dict(type='MonaSwinTransformer'))
