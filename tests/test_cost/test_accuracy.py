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


def _row(method, miou):
    return dict(method=method, status='ok', trainable_params=467000, tuning_pct=2.06,
                memory_mb=139.4, step_ms=406.2, lr=0.01,
                sweep=[dict(lr=0.001, dev_mIoU=18.9), dict(lr=0.01, dev_mIoU=26.8)],
                val=dict(mIoU=miou, aAcc=87.8, mAcc=35.6,
                         per_class_iou=dict(background=93.7, item=miou)))


def test_update_doc_tables(tmp_path):
    for name, rows in (('a', [_row('e3va', 25.58)]), ('b', [_row('frozen', 26.25),
                                                            dict(method='full', status='failed',
                                                                 error='boom')])):
        (tmp_path / 'results' / name).mkdir(parents=True)
        (tmp_path / 'results' / name / 'accuracy.json').write_text(
            json.dumps(dict(settings=None, rows=rows)))
    doc = tmp_path / 'page.md'
    head, mid, tail = '# page\n\nprose kept\n', '\nbetween\n', '\nend prose\n'
    doc.write_text(f'{head}<!-- accuracy-table results/a/accuracy.json -->\n| stale | row |\n'
                   f'<!-- /accuracy-table -->{mid}<!-- accuracy-table results/b/accuracy.json -->\n'
                   f'<!-- /accuracy-table -->{tail}')
    used = acc.update_doc_tables(str(doc))
    assert [osp.relpath(p, tmp_path) for p in used] == [
        osp.join('results', 'a', 'accuracy.json'), osp.join('results', 'b', 'accuracy.json')]
    text = doc.read_text()
    assert text.startswith(head) and text.endswith(tail) and mid in text and 'stale' not in text
    assert ('| e3va | 0.467 | 2.06 | 139 | 406 | 0.01 | 0.001: 18.90, 0.01: 26.80 | 25.58 | '
            '87.80 |') in text
    assert '| frozen | 0.467 |' in text and '| full | failed: boom |' in text
    first, second = text.split('<!-- /accuracy-table -->')[:2]
    assert 'frozen' not in first and 'e3va' not in second  # each table from its own file
    acc.update_doc_tables(str(doc))
    assert doc.read_text() == text  # a re-run with the same JSON changes nothing

    doc.write_text('<!-- accuracy-table results/a/accuracy.json -->\n| no end |\n')
    with pytest.raises(BenchError, match='end markers'):
        acc.update_doc_tables(str(doc))
    doc.write_text('<!-- accuracy-table results/c/accuracy.json -->\n<!-- /accuracy-table -->\n')
    with pytest.raises(BenchError, match='results/c/accuracy.json.*not found'):
        acc.update_doc_tables(str(doc))
    doc.write_text('no markers\n')
    with pytest.raises(BenchError, match='no "<!-- accuracy-table'):
        acc.update_doc_tables(str(doc))


def test_docs_accuracy_tables_are_the_tools(tmp_path):
    """docs/accuracy.md's tables are what ``--update-doc`` writes from the committed JSON."""
    import re
    import shutil
    docs = osp.join(REPO, 'docs')
    text = open(osp.join(docs, 'accuracy.md')).read()
    names = re.findall(r'<!-- accuracy-table (\S+) -->', text)
    assert 'results/accuracy/accuracy.json' in names
    for name in names:
        os.makedirs(osp.dirname(tmp_path / name), exist_ok=True)
        shutil.copy(osp.join(docs, name), tmp_path / name)
    shutil.copy(osp.join(docs, 'accuracy.md'), tmp_path / 'accuracy.md')
    acc.update_doc_tables(str(tmp_path / 'accuracy.md'))
    assert (tmp_path / 'accuracy.md').read_text() == text, \
        'run: python tools/accuracy.py --update-doc docs/accuracy.md'
