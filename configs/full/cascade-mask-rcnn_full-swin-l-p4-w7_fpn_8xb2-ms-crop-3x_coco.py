# Full fine-tuning: every backbone parameter trains (drop_path kept).
# Cascade Mask R-CNN, Swin-L, COCO 3x multi-scale + crop: the E3VA config of the same setup
# (recipe, data, pretrained trunk); model.backbone.type changes, and no adapter-only files
# are written (nothing is frozen: such a file would be the whole model).
_base_ = '../e3va/cascade-mask-rcnn_e3va-swin-l-p4-w7_fpn_8xb2-ms-crop-3x_coco.py'

model = dict(backbone=dict(type='FullSwinTransformer'))
default_hooks = dict(checkpoint=dict(save_adapter=False))
