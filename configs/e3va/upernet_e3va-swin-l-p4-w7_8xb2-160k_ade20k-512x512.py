# E3VA, UperNet, Swin-L (ImageNet-22k), ADE20K 160k iterations, 512x512 crops, AdamW 6e-5, wd 0.01,
# poly with 1500-iteration warm-up, 8 GPUs x 2 images. SPEC.md section 1; reported 49.64 mIoU.
# mmseg's own Swin-L UperNet recipe with the backbone `type` switched: nothing else changes.
# Pretrained trunk (official release, converted by the loader):
#   wget -P checkpoints \
#     https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window7_224_22k.pth
# Data: ADE20K under data/ade/ADEChallengeData2016 (mmseg layout).
_base_ = ['mmseg::swin/swin-large-patch4-window7-in22k-pre_upernet_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='E3VASwinTransformer',
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/swin_large_patch4_window7_224_22k.pth')))
custom_hooks = [dict(type='FiniteLossHook'), dict(type='TrainingCostHook')]
optim_wrapper = dict(constructor='TrainableOptimWrapperConstructor')

# Checkpoints survive a kill during save, also written adapter-only (adapter_*.pth, ~1 % of
# the trunk), and --resume trusts this run's own files (docs/scale.md).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', save_adapter=True))
