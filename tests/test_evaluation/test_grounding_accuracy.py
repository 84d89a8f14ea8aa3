"""GroundingAccuracy: Acc@0.5 on hand-made predictions, per split, in one and in two processes."""
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmsidetune.evaluation import GroundingAccuracy

GT = [0., 0., 10., 10.]
# (split, predicted xyxy, IoU with GT by hand, hit at 0.5)
CASES = [
    ('testA', [0., 0., 10., 10.], 1.0, True),
    ('testA', [0., 0., 10., 5.], 0.5, True),  # 50 / 100: on the threshold counts
    ('testA', [0., 0., 20., 10.], 0.5, True),  # 100 / 200
    ('testB', [0., 0., 10., 4.], 0.4, False),
    ('testB', [5., 5., 15., 15.], 25 / 175, False),
    ('testB', [2., 0., 12., 10.], 80 / 120, True),
]
# testA 3/3, testB 1/3, all 4/6
EXPECTED = {'Acc@0.5': 400 / 6, 'testA/Acc@0.5': 100.0, 'testB/Acc@0.5': 100 / 3}


def samples(cases):
    """Model outputs as the ValLoop hands them to the evaluator (``DetDataSample.to_dict()``)."""
    out = []
    for split, pred, _, _ in cases:
        sample = DetDataSample(metainfo=dict(gt_bbox_ori=GT, split=split, img_path='x.jpg'))
        sample.pred_instances = InstanceData(bboxes=torch.tensor([pred]), scores=torch.ones(1),
                                             labels=torch.zeros(1, dtype=torch.long))
        out.append(sample.to_dict())
    return out


def test_hand_made_predictions():
    metric = GroundingAccuracy()
    metric.process(None, samples(CASES))
    result = metric.evaluate(size=len(CASES))
    assert result.keys() == EXPECTED.keys()
    for key, value in EXPECTED.items():
        assert result[key] == pytest.approx(value)
    # One split: only the overall key.
    metric.process(None, samples(CASES[3:]))
    assert metric.evaluate(size=3) == {'Acc@0.5': pytest.approx(100 / 3)}
    strict = GroundingAccuracy(iou_thr=0.6)
    strict.process(None, samples(CASES))
    assert strict.evaluate(size=6) == {'Acc@0.6': pytest.approx(200 / 6),
                                       'testA/Acc@0.6': pytest.approx(100 / 3),
                                       'testB/Acc@0.6': pytest.approx(100 / 3)}


def test_bad_input():
    with pytest.raises(ValueError, match='iou_thr'):
        GroundingAccuracy(iou_thr=0)
    metric = GroundingAccuracy()
    bad = samples(CASES[:1])
    bad[0]['pred_instances']['bboxes'] = torch.zeros(0, 4)
    with pytest.raises(ValueError, match='no predicted box'):
        metric.process(None, bad)
    with pytest.raises(ValueError, match='no predictions'):
        GroundingAccuracy().compute_metrics([])


def _worker(rank, world_size, port, queue):
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world_size)
    try:
        metric = GroundingAccuracy()
        # Rank 0 holds testA (100 % on its own), rank 1 testB (33.3 %): only gathering gives 66.7.
        metric.process(None, samples(CASES[3 * rank:3 * (rank + 1)]))
        queue.put((rank, metric.evaluate(size=len(CASES))))
    finally:
        dist.destroy_process_group()


def test_two_processes_gather_before_computing():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    # fork: the workers inherit the imported stack (spawn re-imports it: ~15 s a process here).
    queue = mp.get_context('fork').SimpleQueue()
    mp.start_processes(_worker, args=(2, port, queue), nprocs=2, join=True, start_method='fork')
    results = dict(queue.get() for _ in range(2))
    for rank in (0, 1):
        assert results[rank].keys() == EXPECTED.keys()
        for key, value in EXPECTED.items():
            assert results[rank][key] == pytest.approx(value), (rank, key)
