# M2IST (TransVG-R50 + BERT-base, six M3ISAs) on RefCOCO+ (unc+) (docs/m2ist.md).
# Bring: checkpoints/detr-r50-unc.pth (TransVG's DETR-R50, or its converted copy from
# tools/model_converters/transvg2mmsidetune.py) and checkpoints/bert-base-uncased (a folder saved
# with transformers' save_pretrained). Switch the method with model.method: m2ist | adapter | full.
_base_ = [
    './_base_/models/m2ist_r50-bert-base.py',
    './_base_/datasets/refcoco+.py',
    './_base_/schedules/m2ist_adamw-step_180e.py',
]
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)

model = dict(
    backbone=dict(checkpoint='checkpoints/detr-r50-unc.pth'),
    language_model=dict(max_tokens=20),
    neck=dict(num_text_tokens=20))
train_dataloader = dict(batch_size=8)  # x 8 GPUs = 64
