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


def _write_pair(folder, seed):
    from PIL import Image
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 236, (512, 512)).astype(np.uint16)
    mask = np.zeros((512, 512), np.uint16)
    mask[100:140, 300:350] = 7  # one instance inside val tile 0 (rows 112-223, columns 256-367)
    mask[10:30, 10:40] = 3
    folder.mkdir()
    Image.fromarray(img).save(folder / 'img2d.tif')
    Image.fromarray(mask).save(folder / 'mask2d.tif')
    return img, mask


def test_writes_binary_labels_and_same_bytes_same_hash(tmp_path, capsys):
    import cv2
    img, mask = _write_pair(tmp_path / 'in', 0)
    hashes = []
    for out in ('a', 'b'):
        sn.main(['--images', str(tmp_path / 'in'), '--out-dir', str(tmp_path / out)])
        hashes.append(capsys.readouterr().out.rsplit('sha256 ', 1)[1].strip())
    assert hashes[0] == hashes[1] and len(hashes[0]) == 64
    label = cv2.imread(str(tmp_path / 'a' / 'ann_dir' / 'val' / 'val_000.png'),
                       cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(label, (mask[112:224, 256:368] > 0).astype(np.uint8))
    grey = cv2.imread(str(tmp_path / 'a' / 'img_dir' / 'train' / 'train_000.png'))
    expected = np.round(img[:112, :112] * 255 / img.max()).astype(np.uint8)
    np.testing.assert_array_equal(grey, np.repeat(expected[..., None], 3, axis=2))
    _write_pair(tmp_path / 'other', 1)  # other pixels, other hash
    sn.main(['--images', str(tmp_path / 'other'), '--out-dir', str(tmp_path / 'c')])
    assert capsys.readouterr().out.rsplit('sha256 ', 1)[1].strip() != hashes[0]
