# LoRA: rank-42 updates on every qkv and proj linear layer.
# UperNet, Swin-L, ADE20K 160k 512x512: the E3VA config of the same setup
# (recipe, data, pretrained trunk); only model.backbone.type changes.
# Reported (SPEC.md section 1): 50.34 mIoU.
_base_ = '../e3va/upernet_e3va-swin-l-p4-w7_8xb2-160k_ade20k-512x512.py'

model = dict(backbone=dict(type='LoRASwinTransformer'))
