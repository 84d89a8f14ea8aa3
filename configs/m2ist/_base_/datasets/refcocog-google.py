# RefCOCOg, Google split (dataset key 'gref'; it has no test split): train on train,
# best checkpoint on val, test on val.
# Split files: data/refexp/split/data/gref/gref_<split>.pth (TransVG/ReSC).
# Images: data/refexp/ln_data/other/images/mscoco/images/train2014/
# GroundingAccuracy reports Acc@0.5 per test split ('<split>/Acc@0.5') when there are several.
_base_ = './refexp_base.py'
max_text_len = 40
test_pipeline = {{_base_.test_pipeline}}
_split_root = 'split/data/gref/'
_img = dict(img_path={{_base_.coco_img_prefix}})
train_dataloader = dict(
    dataset=dict(
        ann_file=_split_root + 'gref_train.pth', dataset_key='gref', data_prefix=_img))
val_dataloader = dict(
    dataset=dict(
        ann_file=_split_root + 'gref_val.pth', dataset_key='gref', data_prefix=_img))
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(
                type={{_base_.dataset_type}},
                data_root={{_base_.data_root}},
                ann_file=_split_root + f'gref_{split}.pth',
                dataset_key='gref',
                data_prefix=_img,
                test_mode=True,
                pipeline=test_pipeline) for split in ('val',)
        ]))
