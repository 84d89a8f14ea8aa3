"""Grounding transforms: phrase flip, direction-aware choice, box-keeping crop, pad, pack, and the
box round trip image -> normalised cxcywh on the canvas -> image (SPEC.md section 2)."""
import numpy as np
import pytest
import torch
from mmdet.structures.bbox import HorizontalBoxes, bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmengine.dataset import Compose
from mmengine.registry import TRANSFORMS, init_default_scope

import mmsidetune  # noqa: F401  (registers the transforms)
from mmsidetune.datasets.transforms import canvas_to_original, names_direction, swap_words

BOX = [30., 40., 150., 200.]  # xyxy in a 300 (h) x 400 (w) image


@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')


def results(text='the red cup', h=300, w=400, box=BOX):
    img = np.random.RandomState(0).randint(1, 255, (h, w, 3)).astype(np.uint8)
    return dict(img=img, img_shape=(h, w), ori_shape=(h, w), text=text,
                gt_bboxes=HorizontalBoxes(torch.tensor([box])), gt_bbox_ori=list(box),
                gt_bboxes_labels=np.zeros(1, dtype=np.int64),
                gt_ignore_flags=np.zeros(1, dtype=bool))


@pytest.mark.parametrize('text, flipped', [
    ('the man on the left', 'the man on the right'),
    ('bright lamp right of the bed', 'bright lamp left of the bed'),
    ('Left, then RIGHT.', 'Right, then LEFT.'),
    ('left-hand side; leftmost chair', 'right-hand side; rightmost chair'),
    ('lefty and brightly lit', 'lefty and brightly lit'),
])
def test_swap_words_swaps_whole_words_only(text, flipped):
    pairs = (('left', 'right'), ('leftmost', 'rightmost'))
    assert swap_words(text, pairs) == flipped
    assert swap_words(flipped, pairs) == text


def test_names_direction_matches_word_starts():
    assert names_direction('the leftmost man') and names_direction('Top shelf')
    assert names_direction('cup in the middle') and names_direction('bottom-right corner')
    assert not names_direction('the bright lamp') and not names_direction('a stop sign')


def test_flip_mirrors_image_and_box_and_swaps_the_words():
    r = results('the bright cup on the LEFT')
    img = r['img'].copy()
    out = TRANSFORMS.build(dict(type='RandomFlipPhrase', prob=1.0))(r)
    assert out['flip'] and out['text'] == 'the bright cup on the RIGHT'
    np.testing.assert_array_equal(out['img'], img[:, ::-1])
    assert out['gt_bboxes'].tensor.tolist() == [[400 - 150., 40., 400 - 30., 200.]]
    kept = TRANSFORMS.build(dict(type='RandomFlipPhrase', prob=0.0))(results('on the left'))
    assert not kept['flip'] and kept['text'] == 'on the left'


def choice(crop_prob):
    return TRANSFORMS.build(dict(
        type='DirectionAwareRandomChoice',
        transforms=[[dict(type='mmdet.Resize', scale=(320, 320), keep_ratio=True)],
                    [dict(type='RandomCropKeepBox', min_size=150, max_size=250),
                     dict(type='mmdet.Resize', scale=(320, 320), keep_ratio=True)]],
        prob=[1.0 - crop_prob, crop_prob]))


@pytest.mark.parametrize('text', ['the cup on the left', 'Top shelf', 'middle one', 'bottom'])
def test_direction_phrases_are_only_resized(text):
    for seed in range(5):
        np.random.seed(seed)
        out = choice(crop_prob=1.0)(results(text))
        assert 'crop_offset' not in out and out['img'].shape[:2] == (240, 320)
        np.testing.assert_allclose(out['gt_bboxes'].tensor[0].tolist(), np.array(BOX) * 0.8)


def test_other_phrases_take_the_crop_branch():
    np.random.seed(0)
    out = choice(crop_prob=1.0)(results('the bright cup'))
    assert 'crop_offset' in out


def test_crop_keeps_the_whole_box_and_window_sizes():
    crop = TRANSFORMS.build(dict(type='RandomCropKeepBox', min_size=150, max_size=250))
    for seed in range(50):
        np.random.seed(seed)
        out = crop(results())
        h, w = out['img'].shape[:2]
        top, left = out['crop_offset']
        assert 150 <= h <= 250 and 150 <= w <= 250 and out['img_shape'] == (h, w)
        x1, y1, x2, y2 = out['gt_bboxes'].tensor[0].tolist()
        assert 0 <= x1 and 0 <= y1 and x2 <= w and y2 <= h
        assert [x1 + left, y1 + top, x2 + left, y2 + top] == BOX
        np.testing.assert_array_equal(out['img'], results()['img'][top:top + h, left:left + w])
    # No window of at most 100 px holds a 120 x 160 box: nothing is cropped.
    small = TRANSFORMS.build(dict(type='RandomCropKeepBox', min_size=50, max_size=100))
    out = small(results())
    assert 'crop_offset' not in out and out['img'].shape[:2] == (300, 400)
    with pytest.raises(ValueError, match='min_size'):
        TRANSFORMS.build(dict(type='RandomCropKeepBox', min_size=300, max_size=200))


def test_pad_centred_at_test_random_in_training():
    pad = TRANSFORMS.build(dict(type='GroundingPad', size=(500, 500)))
    out = pad(results())
    assert out['pad_offset'] == (100, 50) and out['pad_shape'] == (500, 500)
    assert out['img_shape'] == (300, 400) and out['img'].shape == (500, 500, 3)
    assert out['img'][:100].sum() == 0 and out['img'][:, :50].sum() == 0
    np.testing.assert_array_equal(out['img'][100:400, 50:450], results()['img'])
    assert out['gt_bboxes'].tensor.tolist() == [[80., 140., 200., 300.]]
    rand = TRANSFORMS.build(dict(type='GroundingPad', size=(500, 500), random_offset=True))
    offsets = set()
    for seed in range(20):
        np.random.seed(seed)
        top, left = rand(results())['pad_offset']
        assert 0 <= top <= 200 and 0 <= left <= 100
        offsets.add((top, left))
    assert len(offsets) > 10
    with pytest.raises(ValueError, match='does not fit'):
        TRANSFORMS.build(dict(type='GroundingPad', size=(320, 320)))(results())


TRAIN_STEPS = dict(
    short=dict(type='RandomChoiceResize', scales=[250, 300],
               resize_type='mmdet.ResizeShortestEdge'),
    crop=dict(type='RandomCropKeepBox', min_size=150, max_size=300),
    long=dict(type='RandomChoiceResize', scales=[(320, 320), (288, 288)], keep_ratio=True,
              resize_type='mmdet.Resize'),
    flip=dict(type='RandomFlipPhrase', prob=1.0),
    pad=dict(type='GroundingPad', size=(320, 320), random_offset=True),
    pack=dict(type='PackGroundingInputs'))


def round_trip(sample):
    """canvas xyxy -> normalised cxcywh -> canvas xyxy -> original pixels, as the model does."""
    meta = sample.metainfo
    hp, wp = meta['pad_shape']
    norm = bbox_xyxy_to_cxcywh(sample.gt_instances.bboxes) / torch.tensor([wp, hp, wp, hp])
    canvas = bbox_cxcywh_to_xyxy(norm * torch.tensor([wp, hp, wp, hp]))
    return canvas_to_original(canvas, meta)


@pytest.mark.parametrize('steps', [
    ('short', 'crop', 'long', 'flip', 'pad', 'pack'),
    ('long', 'flip', 'pad', 'pack'),
    ('long', 'pad', 'pack'),
])
def test_box_round_trips_through_resize_crop_flip_pad(steps):
    pipeline = Compose([TRAIN_STEPS[s] for s in steps])
    for seed in range(10):
        np.random.seed(seed)
        sample = pipeline(results())['data_samples']
        assert sample.gt_instances.bboxes.dtype == torch.float32
        np.testing.assert_allclose(round_trip(sample)[0].tolist(), BOX, atol=1e-3)
        if 'crop' not in steps:
            # The contract's keys alone (pad_offset, flip, scale_factor) invert crop-free chains.
            meta = {k: v for k, v in sample.metainfo.items() if k != 'homography_matrix'}
            np.testing.assert_allclose(
                canvas_to_original(sample.gt_instances.bboxes, meta)[0].tolist(), BOX, atol=1e-3)


def test_pack_gives_the_contract_sample():
    r = results('the cup on the left')
    r.update(img_id=7, img_path='x.jpg', dataset_key='unc', split='val')
    pipeline = Compose([dict(type='mmdet.Resize', scale=(320, 320), keep_ratio=True),
                        dict(type='GroundingPad', size=(320, 320)),
                        dict(type='PackGroundingInputs')])
    packed = pipeline(r)
    inputs, sample = packed['inputs'], packed['data_samples']
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, 320, 320)
    assert sample.text == 'the cup on the left'
    assert isinstance(sample.gt_instances.bboxes, torch.Tensor)
    assert sample.gt_instances.bboxes.shape == (1, 4) and sample.gt_instances.labels.tolist() == [0]
    meta = sample.metainfo
    assert meta['pad_shape'] == (320, 320) and meta['img_shape'] == (240, 320)
    assert meta['pad_offset'] == (40, 0) and meta['ori_shape'] == (300, 400)
    assert meta['gt_bbox_ori'] == BOX and meta['split'] == 'val' and meta['dataset_key'] == 'unc'
    np.testing.assert_allclose(meta['scale_factor'], (0.8, 0.8))
