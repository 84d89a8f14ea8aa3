"""Build the Fashion-MNIST composite segmentation set: real product images on real photos.

    apt-get install dataset-fashion-mnist opencv-doc     # Debian/Ubuntu; or the public downloads
    python tools/dataset_converters/fashion_mnist_composite.py \\
        --fashion-mnist /usr/share/datasets/fashion-mnist \\
        --backgrounds /usr/share/doc/opencv-doc/examples/data \\
        --out-dir data/fmnist_composite

Each image is a crop of a real photo with 1-3 Fashion-MNIST items (real 28 x 28 grayscale product
photos, Xiao et al. 2017) pasted at 2-3x scale with a random horizontal flip and a rotation of
at most 15 degrees; the label map is the items' silhouettes (pixels of the warped item brighter
than 10/255), class ``1 + label`` (``0`` = background; a later item occludes an earlier one).

Splits (mmseg's standard layout, ``img_dir/{train,dev,val}`` and ``ann_dir/{train,dev,val}``,
PNG): the background photos are split three ways (disjoint files), the training and dev items are
disjoint subsets of Fashion-MNIST's training set and the validation items come from its test
set. The same ``--seed`` writes the same bytes: the tool prints the SHA-256 of everything it
wrote (file names and contents, in sorted order). docs/accuracy.md describes the task.
"""
import argparse
import gzip
import hashlib
import os
import os.path as osp
import sys
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

CLASSES = ('background', 'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
           'Sneaker', 'Bag', 'Ankle boot')
SPLITS = ('train', 'dev', 'val')
IMG_EXTS = ('.jpg', '.jpeg', '.png')
ITEM_THRESHOLD = 10  # a warped item pixel above this (of 255) belongs to the silhouette


class BuildError(ValueError):
    """Bad input (a missing file, too few photos or items); the message names it."""


def read_idx(path: str) -> np.ndarray:
    """An IDX file (``.gz`` or plain), as uint8: images ``(N, 28, 28)`` or labels ``(N,)``."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    if len(data) < 8 or data[:2] != b'\0\0' or data[2] != 8:
        raise BuildError(f'{path}: not an unsigned-byte IDX file')
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise BuildError(f'{path}: {body.size} bytes for shape {dims}')
    return body.reshape(dims)


def load_fashion_mnist(folder: str) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """``{'train': (images, labels), 't10k': ...}`` from the four IDX files (``.gz`` or not)."""
    out = {}
    for part in ('train', 't10k'):
        arrays = []
        for kind in ('images-idx3', 'labels-idx1'):
            base = osp.join(folder, f'{part}-{kind}-ubyte')
            path = base + '.gz' if osp.isfile(base + '.gz') else base
            if not osp.isfile(path):
                raise BuildError(f'Fashion-MNIST file {base}[.gz] not found (apt-get install '
                                 'dataset-fashion-mnist, or download it from '
                                 'github.com/zalandoresearch/fashion-mnist)')
            arrays.append(read_idx(path))
        if len(arrays[0]) != len(arrays[1]):
            raise BuildError(f'{folder}: {part} has {len(arrays[0])} images, '
                             f'{len(arrays[1])} labels')
        out[part] = tuple(arrays)
    return out


def list_backgrounds(folder: str, min_side: int) -> List[str]:
    """Photos in ``folder`` (not recursive) whose shorter side is at least ``min_side``, sorted."""
    if not osp.isdir(folder):
        raise BuildError(f'background folder {folder} not found (apt-get install opencv-doc)')
    found = []
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith(IMG_EXTS):
            continue
        img = cv2.imread(osp.join(folder, name), cv2.IMREAD_COLOR)
        if img is not None and min(img.shape[:2]) >= min_side:
            found.append(osp.join(folder, name))
    return found


def split_backgrounds(paths: Sequence[str], seed: int,
                      fractions=(0.6, 0.2, 0.2)) -> Dict[str, List[str]]:
    """Disjoint background photos per split (a seeded shuffle of the sorted list)."""
    if len(paths) < 3:
        raise BuildError(f'need at least 3 background photos, found {len(paths)}')
    order = np.random.default_rng(seed).permutation(len(paths))
    n_train = max(1, int(round(fractions[0] * len(paths))))
    n_dev = max(1, int(round(fractions[1] * len(paths))))
    n_train = min(n_train, len(paths) - 2)
    cuts = {'train': order[:n_train], 'dev': order[n_train:n_train + n_dev],
            'val': order[n_train + n_dev:]}
    return {k: [paths[i] for i in sorted(v)] for k, v in cuts.items()}


def split_items(num_train_items: int, num_test_items: int, n_dev: int,
                seed: int) -> Dict[str, Tuple[str, np.ndarray]]:
    """Item indices per split: ``(source part, indices)``; train and dev are disjoint parts of
    Fashion-MNIST's training set, val is its test set."""
    if n_dev >= num_train_items:
        raise BuildError(f'{n_dev} dev items leave none of {num_train_items} for training')
    order = np.random.default_rng(seed + 1).permutation(num_train_items)
    return {'train': ('train', np.sort(order[n_dev:])), 'dev': ('train', np.sort(order[:n_dev])),
            'val': ('t10k', np.arange(num_test_items))}


def paste_item(img: np.ndarray, label_map: np.ndarray, item: np.ndarray, cls: int,
               rng: np.random.Generator, scale_range=(2., 3.), max_angle=15.) -> None:
    """Paste one 28 x 28 item (in place): scaled, flipped, rotated, at a random position."""
    scale = rng.uniform(*scale_range)
    angle = rng.uniform(-max_angle, max_angle)
    if rng.random() < 0.5:
        item = item[:, ::-1]
    side = int(np.ceil(28 * scale * 1.42))  # room for the rotated item
    center = (side / 2., side / 2.)
    m = cv2.getRotationMatrix2D((13.5, 13.5), angle, scale)
    m[:, 2] += np.array(center) - 13.5
    warped = cv2.warpAffine(np.ascontiguousarray(item), m, (side, side), flags=cv2.INTER_LINEAR,
                            borderValue=0)
    H, W = label_map.shape
    y0 = int(rng.integers(-side // 4, max(H - 3 * side // 4, -side // 4 + 1)))
    x0 = int(rng.integers(-side // 4, max(W - 3 * side // 4, -side // 4 + 1)))
    ys, xs = slice(max(y0, 0), min(y0 + side, H)), slice(max(x0, 0), min(x0 + side, W))
    patch = warped[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    mask = patch > ITEM_THRESHOLD
    img[ys, xs][mask] = patch[mask][:, None]
    label_map[ys, xs][mask] = cls


def make_sample(photo: np.ndarray, items: np.ndarray, labels: np.ndarray, size: int,
                rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """One ``(size, size, 3)`` BGR image and its ``(size, size)`` label map."""
    h, w = photo.shape[:2]
    crop = int(rng.integers(size, min(h, w, 2 * size) + 1))
    y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    img = cv2.resize(photo[y:y + crop, x:x + crop], (size, size), interpolation=cv2.INTER_AREA)
    label_map = np.zeros((size, size), np.uint8)
    for k in rng.choice(len(items), size=int(rng.integers(1, 4)), replace=False):
        paste_item(img, label_map, items[k], 1 + int(labels[k]), rng)
    return img, label_map


def build(fmnist: Dict[str, Tuple[np.ndarray, np.ndarray]], backgrounds: Sequence[str],
          out_dir: str, counts: Dict[str, int], size: int = 168, seed: int = 0,
          n_dev_items: int = 5000) -> str:
    """Write the three splits under ``out_dir``; return the SHA-256 of what was written.

    Raises:
        BuildError: for too few photos or items, or an unreadable photo.
    """
    bgs = split_backgrounds(backgrounds, seed)
    items = split_items(len(fmnist['train'][0]), len(fmnist['t10k'][0]), n_dev_items, seed)
    photos = {}
    digest = hashlib.sha256()
    for s_index, split in enumerate(SPLITS):
        part, idx = items[split]
        images, labels = fmnist[part][0][idx], fmnist[part][1][idx]
        rng = np.random.default_rng([seed, s_index])
        for d in ('img_dir', 'ann_dir'):
            os.makedirs(osp.join(out_dir, d, split), exist_ok=True)
        for n in range(counts[split]):
            path = bgs[split][int(rng.integers(len(bgs[split])))]
            if path not in photos:
                photos[path] = cv2.imread(path, cv2.IMREAD_COLOR)
                if photos[path] is None:
                    raise BuildError(f'cannot read background photo {path}')
            img, label_map = make_sample(photos[path], images, labels, size, rng)
            name = f'{split}_{n:05d}.png'
            for d, array in (('img_dir', img), ('ann_dir', label_map)):
                ok, buf = cv2.imencode('.png', array)
                data = buf.tobytes()
                with open(osp.join(out_dir, d, split, name), 'wb') as f:
                    f.write(data)
                digest.update(f'{d}/{split}/{name}'.encode())
                digest.update(data)
    return digest.hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--fashion-mnist', required=True,
                        help='folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]')
    parser.add_argument('--backgrounds', required=True, help='folder of real photos')
    parser.add_argument('--out-dir', default='data/fmnist_composite')
    parser.add_argument('--size', type=int, default=168, help='image side in pixels')
    parser.add_argument('--num-train', type=int, default=1000)
    parser.add_argument('--num-dev', type=int, default=100)
    parser.add_argument('--num-val', type=int, default=300)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true', help='write into an existing --out-dir')
    args = parser.parse_args(argv)
    if osp.exists(osp.join(args.out_dir, 'img_dir')) and not args.force:
        sys.exit(f'fashion_mnist_composite: {args.out_dir} already holds a set; pass --force to '
                 'rewrite it or choose another --out-dir')
    try:
        fmnist = load_fashion_mnist(args.fashion_mnist)
        backgrounds = list_backgrounds(args.backgrounds, min_side=args.size)
        digest = build(fmnist, backgrounds, args.out_dir,
                       dict(train=args.num_train, dev=args.num_dev, val=args.num_val),
                       size=args.size, seed=args.seed)
    except BuildError as e:
        sys.exit(f'fashion_mnist_composite: {e}')
    print(f'fashion_mnist_composite: wrote {args.num_train}/{args.num_dev}/{args.num_val} '
          f'train/dev/val images to {args.out_dir} from {len(backgrounds)} photos; '
          f'sha256 {digest}')


if __name__ == '__main__':
    main()
