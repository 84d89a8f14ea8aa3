# LoRand: dual low-rank adapters after attention and MLP, in the stream.
# UperNet, Swin-L, Pascal VOC 2012 + aug 512x512: the E3VA config of the same setup
# (recipe, data, pretrained trunk); model.backbone.type and the bottleneck width change.
_base_ = '../e3va/upernet_e3va-swin-l-p4-w7_8xb2-40k_voc12aug-512x512.py'

# A fixed 64-wide bottleneck gives the published Swin-L LoRand budget (1.31 M); see
# LoRandSwinTransformer.
model = dict(backbone=dict(type='LoRandSwinTransformer', adapter_hidden_dims=64))
