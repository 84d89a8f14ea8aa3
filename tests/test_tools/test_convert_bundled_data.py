"""The committed bundled data is exactly what tools/convert_bundled_data.py produces."""
import filecmp
import json
import os
import os.path as osp
import subprocess
import sys

from pycocotools.coco import COCO


def test_conversion_reproduces_committed_files(repo_root, tmp_path):
    out = tmp_path / 'bundled'
    subprocess.run([sys.executable, osp.join(repo_root, 'tools', 'convert_bundled_data.py'),
                    '--out-dir', str(out)], check=True, capture_output=True)
    committed = osp.join(repo_root, 'data', 'bundled')
    for sub in ('coco/images', 'coco/annotations', 'seg/images', 'seg/labels'):
        names = sorted(os.listdir(osp.join(committed, sub)))
        assert names == sorted(os.listdir(out / sub))
        match, mismatch, errors = filecmp.cmpfiles(osp.join(committed, sub), out / sub, names,
                                                   shallow=False)
        assert not mismatch and not errors, (sub, mismatch, errors)


def test_bundled_coco_set_is_consistent(repo_root):
    root = osp.join(repo_root, 'data', 'bundled', 'coco')
    coco = COCO(osp.join(root, 'annotations', 'instances.json'))
    assert len(coco.getImgIds()) == 3 and len(coco.getAnnIds()) == 28
    classes = open(osp.join(root, 'classes.txt')).read().split()
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == classes
    for ann in coco.loadAnns(coco.getAnnIds()):
        mask = coco.annToMask(ann)
        assert mask.sum() == ann['area'] > 0
        x, y, w, h = ann['bbox']
        ys, xs = mask.nonzero()
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
