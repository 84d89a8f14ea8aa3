# M2IST (TransVG-R50 + BERT-base, six M3ISAs) on RefCOCOg, Google split (gref) (docs/m2ist.md).
# Bring: checkpoints/detr-r50-gref.pth (TransVG's DETR-R50, or its converted copy from
# tools/model_converters/transvg2mmsidetune.py) and checkpoints/bert-base-uncased (a folder saved
# with transformers' save_pretrained). Switch the method with model.method: m2ist | adapter | full.
_base_ = [
    './_base_/models/m2ist_r50-bert-base.py',
    './_base_/datasets/refcocog-google.py',
    './_base_/schedules/m2ist_adamw-step_90e.py',
]
custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)

model = dict(
    backbone=dict(checkpoint='checkpoints/detr-r50-gref.pth'),
    language_model=dict(max_tokens=40),
    neck=dict(num_text_tokens=40))
train_dataloader = dict(batch_size=8)  # x 8 GPUs = 64
