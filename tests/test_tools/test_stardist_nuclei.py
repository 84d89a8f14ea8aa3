"""tools/dataset_converters/stardist_nuclei.py: train, dev and val tiles never share a pixel."""
import importlib.util
import os.path as osp

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
spec = importlib.util.spec_from_file_location(
    'stardist_nuclei', osp.join(REPO, 'tools', 'dataset_converters', 'stardist_nuclei.py'))
sn = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sn)


def test_tiles_are_disjoint_and_inside():
    owner = np.zeros((512, 512), np.int64)  # bit per split covering each pixel
    for bit, (split, corners) in enumerate(sn.tiles().items()):
        for y, x in corners:
            assert 0 <= y and y + sn.TILE <= 512 and 0 <= x and x + sn.TILE <= 512, (split, y, x)
            owner[y:y + sn.TILE, x:x + sn.TILE] |= 1 << bit
    assert set(np.unique(owner)) <= {0, 1, 2, 4}  # no pixel in two splits
    assert [len(v) for v in sn.tiles().values()] == [36, 2, 6]
