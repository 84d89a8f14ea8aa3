"""tools/dataset_converters/fashion_mnist_composite.py on synthetic IDX files and photos:
determinism (same seed, same bytes and hash), disjoint photos and items across splits, label maps
that are exactly the pasted silhouettes' classes."""
import gzip
import importlib.util
import os
import os.path as osp

import cv2
import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
spec = importlib.util.spec_from_file_location(
    'fmnist_composite', osp.join(REPO, 'tools', 'dataset_converters',
                                 'fashion_mnist_composite.py'))
fmc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fmc)


def write_idx(path, array):
    header = b'\0\0\x08' + bytes([array.ndim]) + b''.join(
        int(d).to_bytes(4, 'big') for d in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_sources(root, n_train=40, n_test=12, n_photos=8, size=56):
    """Synthetic Fashion-MNIST (bright squares, labels 0-9) and random photos; returns dirs."""
    rng = np.random.default_rng(0)
    fm = osp.join(root, 'fm')
    os.makedirs(fm)
    for part, n in (('train', n_train), ('t10k', n_test)):
        imgs = np.zeros((n, 28, 28), np.uint8)
        imgs[:, 6:22, 8:20] = rng.integers(60, 255, (n, 1, 1))
        write_idx(osp.join(fm, f'{part}-images-idx3-ubyte.gz'), imgs)
        write_idx(osp.join(fm, f'{part}-labels-idx1-ubyte.gz'), np.arange(n) % 10)
    bg = osp.join(root, 'bg')
    os.makedirs(bg)
    for i in range(n_photos):
        cv2.imwrite(osp.join(bg, f'photo{i}.png'),
                    rng.integers(0, 50, (size + 20, size + 30, 3)).astype(np.uint8))
    cv2.imwrite(osp.join(bg, 'tiny.png'), np.zeros((10, 10, 3), np.uint8))  # too small: skipped
    return fm, bg


def build(fm, bg, out, seed=0, size=56):
    return fmc.build(fmc.load_fashion_mnist(fm), fmc.list_backgrounds(bg, size), out,
                     dict(train=6, dev=3, val=3), size=size, seed=seed, n_dev_items=10)


def tree_bytes(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            with open(osp.join(d, f), 'rb') as fh:
                out[osp.relpath(osp.join(d, f), root)] = fh.read()
    return out


def test_same_seed_same_bytes(tmp_path):
    fm, bg = make_sources(str(tmp_path))
    h1 = build(fm, bg, str(tmp_path / 'a'))
    h2 = build(fm, bg, str(tmp_path / 'b'))
    h3 = build(fm, bg, str(tmp_path / 'c'), seed=1)
    assert h1 == h2 != h3
    a, b = tree_bytes(str(tmp_path / 'a')), tree_bytes(str(tmp_path / 'b'))
    assert a == b and len(a) == 2 * (6 + 3 + 3)


def test_splits_are_disjoint():
    photos = [f'p{i}.jpg' for i in range(20)]
    split = fmc.split_backgrounds(photos, seed=0)
    sets = [set(split[s]) for s in fmc.SPLITS]
    assert all(sets) and sum(map(len, sets)) == 20 and len(set.union(*sets)) == 20
    items = fmc.split_items(100, 30, n_dev=10, seed=0)
    assert items['train'][0] == items['dev'][0] == 'train' and items['val'][0] == 't10k'
    assert not set(items['train'][1]) & set(items['dev'][1])
    assert len(items['train'][1]) + len(items['dev'][1]) == 100


def test_labels_are_silhouettes(tmp_path):
    """Every labelled pixel is an item pixel: grey (equal channels; the photos here are coloured
    noise) and brighter than the silhouette threshold."""
    fm, bg = make_sources(str(tmp_path))
    build(fm, bg, str(tmp_path / 'a'))
    for split in fmc.SPLITS:
        folder = tmp_path / 'a' / 'ann_dir' / split
        for name in sorted(os.listdir(folder)):
            label = cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED)
            img = cv2.imread(str(tmp_path / 'a' / 'img_dir' / split / name))
            assert label.shape == img.shape[:2] == (56, 56)
            assert label.max() <= 10 and (label > 0).any()
            fg = label > 0
            assert (img[fg][:, 0] == img[fg][:, 2]).all()
            assert (img[fg][:, 0] > fmc.ITEM_THRESHOLD).all()
            assert (img[~fg][:, 0] != img[~fg][:, 2]).any()


def test_bad_input_is_named(tmp_path):
    with pytest.raises(fmc.BuildError, match='train-images-idx3-ubyte'):
        fmc.load_fashion_mnist(str(tmp_path))
    with pytest.raises(fmc.BuildError, match='at least 3 background photos'):
        fmc.split_backgrounds(['a.jpg', 'b.jpg'], seed=0)
