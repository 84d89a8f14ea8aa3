# Full fine-tuning: every backbone parameter trains (drop_path kept).
# RetinaNet, Swin-L, Pascal VOC07+12: the E3VA config of the same setup
# (recipe, data, pretrained trunk); model.backbone.type changes, and no adapter-only files
# are written (nothing is frozen: such a file would be the whole model).
# Reported (SPEC.md section 1): 83.5 AP, 15679 MB.
_base_ = '../e3va/retinanet_e3va-swin-l-p4-w7_fpn_1x_voc0712.py'

model = dict(backbone=dict(type='FullSwinTransformer'))
default_hooks = dict(checkpoint=dict(save_adapter=False))
