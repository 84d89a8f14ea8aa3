# Full fine-tuning: every backbone parameter trains (drop_path kept).
# UperNet, Swin-L, Pascal VOC 2012 + aug 512x512: the E3VA config of the same setup
# (recipe, data, pretrained trunk); model.backbone.type changes, and no adapter-only files
# are written (nothing is frozen: such a file would be the whole model).
_base_ = '../e3va/upernet_e3va-swin-l-p4-w7_8xb2-40k_voc12aug-512x512.py'

model = dict(backbone=dict(type='FullSwinTransformer'))
default_hooks = dict(checkpoint=dict(save_adapter=False))
