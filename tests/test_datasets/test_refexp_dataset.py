"""RefExpDataset: both file formats, all entry layouts, clear errors, the bundled expressions."""
import json
import os.path as osp
import pickle

import numpy as np
import pytest
import torch

from mmsidetune.datasets import DATASET_KEYS, RefExpDataset

BUNDLED = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'data', 'bundled')


def build(ann_file, dataset_key='unc', **kwargs):
    kwargs.setdefault('check_image_size', False)  # most entries name made-up images
    return RefExpDataset(ann_file=str(ann_file), dataset_key=dataset_key,
                         data_prefix=dict(img_path=osp.join(BUNDLED, 'coco', 'images')), **kwargs)


def bundled_entries(split):
    """(file_name, xywh box, caption) per expression of the committed MDETR-style json."""
    data = json.load(open(osp.join(BUNDLED, 'refexp', f'refexp_{split}.json')))
    anns = {a['image_id']: a for a in data['annotations']}
    return [(img['file_name'], anns[img['id']]['bbox'], img['caption']) for img in data['images']]


def xyxy(box):
    return [box[0], box[1], box[0] + box[2], box[1] + box[3]]


def save_pth(path, entries):
    torch.save(entries, path)
    return path


def test_json_and_pth_layouts_give_the_same_samples(tmp_path):
    entries = bundled_entries('train')
    from_json = build(osp.join(BUNDLED, 'refexp', 'refexp_train.json'), check_image_size=True)
    assert len(from_json) == len(entries) == 33
    # RefCOCO family: (file, ann id, xywh, phrase, attributes); ReferIt: xyxy; Flickr: 3 fields.
    layouts = {
        'unc': [(f, i, box, text, []) for i, (f, box, text) in enumerate(entries)],
        'gref_umd': [(f, i, box, text, []) for i, (f, box, text) in enumerate(entries)],
        'referit': [(f, i, xyxy(box), text, []) for i, (f, box, text) in enumerate(entries)],
        'flickr': [(f, xyxy(box), text) for f, box, text in entries],
    }
    for key, pth_entries in layouts.items():
        ds = build(save_pth(tmp_path / f'{key}_train.pth', pth_entries), dataset_key=key,
                   check_image_size=True)
        assert len(ds) == len(from_json)
        for i in range(len(ds)):
            a, b = ds.get_data_info(i), from_json.get_data_info(i)
            for field in ('img_path', 'text', 'gt_bbox_ori', 'split'):
                assert a[field] == b[field], (key, i, field)
            assert a['dataset_key'] == key
            assert a['instances'] == [dict(bbox=a['gt_bbox_ori'], bbox_label=0, ignore_flag=0)]
    first = from_json.get_data_info(0)
    assert first['text'] == 'the man in the black hat'
    assert first['gt_bbox_ori'] == [179.0, 66.0, 316.0, 231.0]  # xywh 179, 66, 137, 165


def test_split_comes_from_the_file_name_or_the_argument(tmp_path):
    path = save_pth(tmp_path / 'unc_testA.pth', [('a.jpg', 0, [1, 2, 3, 4], 'x', [])])
    assert build(path).get_data_info(0)['split'] == 'testA'
    assert build(path, split='val').get_data_info(0)['split'] == 'val'
    assert build(path, ann_format='pth', split='s').get_data_info(0)['img_path'].endswith('a.jpg')


def test_pth_is_read_without_unpickling_code(tmp_path):
    # TransVG's lists of tuples/str/numbers pass torch's weights_only unpickler; others don't.
    path = save_pth(tmp_path / 'unc_val.pth', [('a.jpg', 0, np.array([1., 2., 3., 4.]), 'x', [])])
    with pytest.raises(pickle.UnpicklingError, match='weights_only=False in the dataset config'):
        build(path)
    assert build(path, weights_only=False).get_data_info(0)['gt_bbox_ori'] == [1., 2., 4., 6.]


@pytest.mark.parametrize('key, entry, message', [
    ('unc', ('a.jpg', 0, [5, 5, 0, 10], 'the cat', []), 'degenerate box'),
    ('unc', ('a.jpg', 0, [5, 5, 10, -1], 'the cat', []), 'degenerate box'),
    ('referit', ('a.jpg', 0, [5, 5, 4, 10], 'the cat', []), 'degenerate box'),
    ('unc', ('a.jpg', 0, [5, 5, 10, 10], '   ', []), 'empty referring expression'),
    ('flickr', ('a.jpg', [5, 5, 10, 10], ''), 'empty referring expression'),
    ('unc', ('a.jpg', [5, 5, 10, 10], 'the cat'), "'unc' entry has 5 fields"),
    ('unc', ('a.jpg', 0, [5, 5, 10], 'the cat', []), 'a box has 4 numbers'),
])
def test_bad_entries_raise_naming_the_entry(tmp_path, key, entry, message):
    path = save_pth(tmp_path / f'{key}_train.pth', [('ok.jpg', 0, [1, 1, 2, 2], 'ok', []), entry]
                    if key != 'flickr' else [entry])
    with pytest.raises(ValueError, match=message) as err:
        build(path, dataset_key=key)
    assert 'entry' in str(err.value)


def test_bad_arguments_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match='unknown dataset_key'):
        build(tmp_path / 'x.pth', dataset_key='refcoco')
    with pytest.raises(ValueError, match='ann_format'):
        build(tmp_path / 'x.txt')
    with pytest.raises(FileNotFoundError, match='x_train.pth'):
        build(tmp_path / 'x_train.pth')
    assert sorted(DATASET_KEYS) == ['flickr', 'gref', 'gref_umd', 'referit', 'unc', 'unc+']


def test_json_entry_needs_exactly_one_box(tmp_path):
    data = json.load(open(osp.join(BUNDLED, 'refexp', 'refexp_val.json')))
    data['annotations'].append(dict(data['annotations'][0], id=999))
    path = tmp_path / 'bad_val.json'
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match='exactly one annotation'):
        build(path)


def test_bundled_expressions_describe_real_boxes_and_hold_out_the_quokka():
    coco = json.load(open(osp.join(BUNDLED, 'coco', 'annotations', 'instances.json')))
    boxes = {a['id']: a['bbox'] for a in coco['annotations']}
    files = {}
    for split in ('train', 'val'):
        data = json.load(open(osp.join(BUNDLED, 'refexp', f'refexp_{split}.json')))
        captions = [img['caption'] for img in data['images']]
        assert len(set(captions)) == len(captions)
        for ann in data['annotations']:
            assert ann['bbox'] == boxes[ann['original_id']]
        files[split] = {img['file_name'] for img in data['images']}
    assert files['train'] == {'voc.jpg', 'arc2017.jpg'}
    assert files['val'] == {'voc.jpg', 'arc2017.jpg', 'quokka.jpg'}
