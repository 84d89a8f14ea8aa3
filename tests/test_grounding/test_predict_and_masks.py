"""Box mapping back to original pixels, the pixel mask, the loss targets."""
import copy

import pytest
import torch
from conftest import make_batch
from mmdet.structures import DetDataSample

from mmsidetune.grounding import build_pixel_mask

META = dict(ori_shape=(480, 640), img_shape=(240, 320), pad_shape=(320, 320),
            pad_offset=(40, 0), scale_factor=(0.5, 0.5), flip=False)


def test_predict_returns_boxes_in_original_pixels(build_mini):
    model = build_mini('m2ist').eval()
    batch = make_batch(num=2)
    # a fixed normalised cxcywh on the 320 canvas: centre (0.25, 0.5), size (0.25, 0.25)
    model._forward = lambda inputs, samples: torch.tensor([[0.25, 0.5, 0.25, 0.25]] * 2)
    out = model.test_step(batch)
    # canvas [40, 120, 120, 200]; top offset 40 -> [40, 80, 120, 160]; / 0.5
    for sample in out:
        assert torch.allclose(sample.pred_instances.bboxes,
                              torch.tensor([[80., 160., 240., 320.]]))
        assert sample.pred_instances.scores.tolist() == [1.0]
        assert sample.pred_instances.labels.tolist() == [0]


def test_pixel_mask_from_metainfo():
    sample = DetDataSample(metainfo=dict(META, pad_offset=(40, 8), img_shape=(240, 300)))
    mask = build_pixel_mask([sample], (320, 320))[0]
    assert mask.shape == (320, 320)
    assert not mask[40:280, 8:308].any()
    assert mask.sum() == 320 * 320 - 240 * 300
    assert mask[39, 8] and mask[40, 7] and mask[280, 8] and mask[40, 308]
    with pytest.raises(KeyError, match='pad_offset'):
        build_pixel_mask([DetDataSample(metainfo=dict(img_shape=(10, 10)))], (16, 16))
    with pytest.raises(ValueError, match='does not fit'):
        build_pixel_mask([DetDataSample(metainfo=dict(img_shape=(10, 10), pad_offset=(8, 0)))],
                         (16, 16))


def test_data_preprocessor_normalises_and_masks(build_mini):
    model = build_mini('m2ist')
    batch = make_batch(num=1)
    data = model.data_preprocessor(copy.deepcopy(batch), False)
    raw = batch['inputs'][0].float()
    rgb_mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    rgb_std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    assert torch.allclose(data['inputs'][0], (raw.flip(0) - rgb_mean) / rgb_std, atol=1e-4)
    mask = data['data_samples'][0].pixel_mask
    top = batch['data_samples'][0].pad_offset[0]
    assert not mask[top:top + 240].any() and mask[:top].all() and mask[top + 240:].all()


def test_loss_targets_are_normalised_cxcywh(build_mini):
    model = build_mini('m2ist')
    batch = make_batch(num=1)
    data = model.data_preprocessor(batch, True)
    target = model._targets(data['inputs'], data['data_samples'])
    x1, y1, x2, y2 = batch['data_samples'][0].gt_instances.bboxes[0].tolist()
    expected = torch.tensor([[(x1 + x2) / 640, (y1 + y2) / 640, (x2 - x1) / 320, (y2 - y1) / 320]])
    assert torch.allclose(target, expected)
    pred = target.clone()
    losses = model.bbox_head.loss(pred, target)
    assert losses['loss_bbox'].item() == pytest.approx(0.0, abs=1e-6)
    assert losses['loss_giou'].item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match='degenerate'):
        model.bbox_head.loss(pred, torch.tensor([[0.5, 0.5, 0.0, 0.2]]))
