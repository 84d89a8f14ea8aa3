"""Tile StarDist's real fluorescence image into a two-class (nucleus / background) mmseg set.

    pip download --no-deps stardist==0.9.2 && unzip -j stardist-0.9.2-*.whl \\
        'stardist/data/images/img2d.tif' 'stardist/data/images/mask2d.tif' -d stardist_data
    python tools/dataset_converters/stardist_nuclei.py --images stardist_data \\
        --out-dir data/stardist_nuclei

The one real 512 x 512 image of the ``stardist`` wheel (BSD-3; from the Kaggle 2018 Data Science
Bowl) with its 125 real nucleus masks: the real-only sanity row of docs/accuracy.md (foreground
IoU). Label = 1 where any nucleus mask is set. Tiles of 112 x 112 (8 x 8 ViT-S/14 patches):

* train: the left half (columns 0-255), stride 48 (36 overlapping tiles);
* dev: columns 256-479, rows 0-111 (2 tiles); val: columns 256-479, rows 112-447 (6 tiles).

Train and dev/val never share a pixel. The image (16-bit, values 0-235 in the file) is scaled
to 0-255 by its maximum and written as a grey RGB PNG. The same input writes the same bytes: the
tool prints the SHA-256 of every file name and byte it wrote (docs/accuracy.md records it).
"""
import argparse
import hashlib
import os
import os.path as osp
import sys

import numpy as np

TILE, STRIDE = 112, 48
CLASSES = ('background', 'nucleus')


def tiles():
    """``{split: [(y, x), ...]}`` top-left corners (see the module docstring)."""
    train = [(y, x) for y in range(0, 512 - TILE + 1, STRIDE)
             for x in range(0, 256 - TILE + 1, STRIDE)]
    dev = [(0, x) for x in (256, 256 + TILE)]
    val = [(y, x) for y in (112, 224, 336) for x in (256, 256 + TILE)]
    return dict(train=train, dev=dev, val=val)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', required=True, help='folder with img2d.tif and mask2d.tif')
    parser.add_argument('--out-dir', default='data/stardist_nuclei')
    parser.add_argument('--force', action='store_true', help='write into an existing --out-dir')
    args = parser.parse_args(argv)
    import cv2
    from PIL import Image
    paths = [osp.join(args.images, f) for f in ('img2d.tif', 'mask2d.tif')]
    missing = [p for p in paths if not osp.isfile(p)]
    if missing:
        sys.exit(f'stardist_nuclei: {missing[0]} not found (unzip it from the stardist==0.9.2 '
                 'wheel, see --help)')
    if osp.exists(osp.join(args.out_dir, 'img_dir')) and not args.force:
        sys.exit(f'stardist_nuclei: {args.out_dir} already holds a set; pass --force')
    img, mask = (np.array(Image.open(p)) for p in paths)
    if img.shape != mask.shape or img.ndim != 2:
        sys.exit(f'stardist_nuclei: image {img.shape} and mask {mask.shape} must be equal 2-D')
    img = np.round(img.astype(np.float64) * 255 / max(int(img.max()), 1)).astype(np.uint8)
    label = (mask > 0).astype(np.uint8)
    digest = hashlib.sha256()
    for split, corners in tiles().items():
        for d in ('img_dir', 'ann_dir'):
            os.makedirs(osp.join(args.out_dir, d, split), exist_ok=True)
        for n, (y, x) in enumerate(corners):
            name = f'{split}_{n:03d}.png'
            for d, array in (('img_dir', np.repeat(img[y:y + TILE, x:x + TILE, None], 3, axis=2)),
                             ('ann_dir', label[y:y + TILE, x:x + TILE])):
                data = cv2.imencode('.png', array)[1].tobytes()
                with open(osp.join(args.out_dir, d, split, name), 'wb') as f:
                    f.write(data)
                digest.update(f'{d}/{split}/{name}'.encode())
                digest.update(data)
    counts = {k: len(v) for k, v in tiles().items()}
    print(f'stardist_nuclei: wrote {counts} tiles of {TILE} x {TILE} to {args.out_dir}; '
          f'nucleus pixels {100 * label.mean():.1f} %; sha256 {digest.hexdigest()}')


if __name__ == '__main__':
    main()
