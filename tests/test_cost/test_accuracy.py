"""The accuracy driver end to end (mmsidetune/cost/accuracy.py) on a tiny generated composite set
with a random tiny ViT: two methods, a two-value sweep, a few iterations; the reported mIoU
against the confusion matrix and the label maps; resume and failure handling."""
import importlib.util
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config

import mmsidetune  # noqa: F401
from mmsidetune.cost import BenchError
from mmsidetune.cost import accuracy as acc

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'accuracy',
                  'fcn_e3va-dinov2-s-p14_1k_fmnist-composite-168x168.py')
SIZE = 56


def _tool(name, path):
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, *path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory):
    make_sources = _tool('fmc_test', ('tests', 'test_tools',
                                      'test_fashion_mnist_composite.py')).make_sources
    root = str(tmp_path_factory.mktemp('composite'))
    fmc = _tool('fmc', ('tools', 'dataset_converters', 'fashion_mnist_composite.py'))
    fm, bg = make_sources(root, size=SIZE)
    out = osp.join(root, 'set')
    fmc.build(fmc.load_fashion_mnist(fm), fmc.list_backgrounds(bg, SIZE), out,
              dict(train=4, dev=2, val=3), size=SIZE, seed=0, n_dev_items=10)
    return out


def tiny_cfg(data_root):
    cfg = Config.fromfile(CONFIG)
    bb = cfg.model.backbone
    bb.init_cfg = None  # random init: no download
    bb.module.update(img_size=SIZE, embed_dims=32, num_layers=2, num_heads=2, out_indices=(1, ))
    cfg.model.decode_head.update(in_channels=32, channels=32)
    cfg.model.data_preprocessor.size = (SIZE, SIZE)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].batch_size = 2
        cfg[key].dataset.data_root = data_root
    return cfg


def confusion_miou(cm):
    cm = np.asarray(cm, np.float64)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    with np.errstate(invalid='ignore'):
        return 100 * np.nanmean(inter / union), 100 * inter.sum() / cm.sum()


def test_driver_end_to_end(tiny_set, tmp_path, monkeypatch):
    cfg = tiny_cfg(tiny_set)
    out = str(tmp_path / 'acc')
    rows = acc.run_accuracy(cfg, ['frozen', 'e3va'], out, iters=2, val_interval=1,
                            lrs={'*': [1e-3, 1e-1]}, cost_steps=1, settings=dict(t=1))
    assert [r['method'] for r in rows] == ['frozen', 'e3va']
    labels = [cv2.imread(osp.join(tiny_set, 'ann_dir', 'val', f), cv2.IMREAD_UNCHANGED)
              for f in sorted(os.listdir(osp.join(tiny_set, 'ann_dir', 'val')))]
    hist = np.bincount(np.concatenate([lb.ravel() for lb in labels]), minlength=11)
    for r in rows:
        assert r['status'] == 'ok', r.get('traceback')
        assert [s['lr'] for s in r['sweep']] == [1e-3, 1e-1]
        assert [c['iter'] for c in r['sweep'][0]['dev_curve']] == [1, 2]
        best = max(r['sweep'], key=lambda s: s['dev_mIoU'])
        assert r['lr'] == best['lr']
        cm = np.array(r['val']['confusion'])
        assert (cm.sum(1) == hist).all()  # every val label pixel counted once, by its label
        miou, aacc = confusion_miou(cm)
        assert r['val']['mIoU'] == pytest.approx(miou, abs=0.006)
        assert r['val']['aAcc'] == pytest.approx(aacc, abs=0.006)
        assert r['memory_mb'] > 0 and r['trainable_params'] > 0
    assert rows[0]['trainable_params'] < rows[1]['trainable_params']  # head+norm < + highway

    # resume: kept rows are not re-run; a failing method is recorded, the others kept
    before = json.load(open(osp.join(out, 'accuracy.json')))['rows']
    real = acc.run_bench

    def failing(cfg, methods, **kw):
        if methods == ['full']:
            raise RuntimeError('boom')
        return real(cfg, methods, **kw)

    monkeypatch.setattr(acc, 'run_bench', failing)
    rows = acc.run_accuracy(cfg, ['frozen', 'e3va', 'full'], out, iters=2, val_interval=1,
                            lrs={'*': [1e-3, 1e-1]}, cost_steps=1, settings=dict(t=1))
    assert rows[:2] == before
    assert rows[2]['method'] == 'full' and rows[2]['status'] == 'failed'
    assert 'boom' in rows[2]['error']
    paths = acc.write_accuracy_report(rows, out)
    table = open(paths['md']).read()
    assert 'full | failed' in table and osp.getsize(paths['png']) > 0
    with pytest.raises(BenchError, match='other settings'):
        acc.run_accuracy(cfg, ['frozen'], out, iters=3, val_interval=1, lrs={'*': [1e-3]},
                         settings=dict(t=1))


def test_lr_grid():
    assert acc.lr_grid('full') == [1e-6, 1e-5, 1e-4]
    assert acc.lr_grid('e3va-lowmem', {'e3va': [1.], '*': [2.]}) == [1.]
    assert acc.lr_grid('adapter', {'e3va': [1.], '*': [2.]}) == [2.]
    with pytest.raises(BenchError, match='no learning rates'):
        acc.lr_grid('adapter', {'e3va': [1.]})
