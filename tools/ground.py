"""Ground a referring expression on one image with a trained M2IST checkpoint.

    python tools/ground.py CONFIG CHECKPOINT --image IMG --text "PHRASE" --out-file OUT.png \
        [--device cpu] [--force]

Runs the config's test pipeline on IMG (long side resize, centred pad), predicts one box, prints
ONE JSON line ``{"bbox_xyxy": [x1, y1, x2, y2], "text": ..., "image": ...}`` with the box in
pixels of IMG, and draws box + phrase on IMG with mmdet's ``DetLocalVisualizer`` into OUT.png.
The test pipeline expects a ground-truth box; a placeholder covering the whole image is given
and never used (predictions do not read it).

stdout holds only that JSON line (every log line goes to stderr), so ``| jq`` works. CHECKPOINT
is a full checkpoint that must fit the config's model (keys and shapes; only BatchNorm's
``num_batches_tracked`` may differ), or an adapter-only file (the trunk then comes from the
config's ``init_cfg``). A non-finite predicted box exits with status 1 and draws nothing. OUT.png
is never one of the inputs; an existing OUT.png is replaced only with ``--force``. Refused before
anything is built: a ``--device`` this machine lacks, an empty or folder IMG, an IMG above 40
megapixels; after the model is built: a phrase with no token the tokenizer knows.
"""
import argparse
import contextlib
import json
import math
import os
import os.path as osp
import sys

import mmcv
import torch
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import MODELS, init_default_scope

import mmsidetune  # noqa: F401  (registers the modules)
from mmsidetune.utils import (AdapterCheckpointError, CheckpointMismatchError,
                              CheckpointReadError, check_output_path, load_weights, parse_device)

#: Largest image (width x height) ground.py decodes: the model sees a few hundred pixels a side
#: (M2IST: 640 x 640, the bundled demo 320 x 320); a bigger file only costs time and memory.
MAX_PIXELS = 40_000_000


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='M2IST config file')
    parser.add_argument('checkpoint', help='trained checkpoint (.pth)')
    parser.add_argument('--image', required=True, help='input image')
    parser.add_argument('--text', required=True, help='referring expression')
    parser.add_argument('--out-file', required=True, help='PNG with the box and phrase drawn')
    parser.add_argument('--device', type=parse_device,
                        default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='cpu, cuda or cuda:N (default: cuda when available)')
    parser.add_argument('--force', action='store_true', help='replace an existing OUT.png')
    return parser.parse_args(argv)


def _test_pipeline(cfg: Config) -> list:
    loader = cfg.get('test_dataloader')
    pipeline = loader.dataset.get('pipeline') if loader else cfg.get('test_pipeline')
    if not pipeline:
        raise ValueError('the config has no test_dataloader.dataset.pipeline (nor test_pipeline)')
    return pipeline


def ground(cfg: Config, model, image_path: str, text: str) -> DetDataSample:
    """One (image, phrase) through the test pipeline and the model; returns the data sample with
    ``pred_instances.bboxes`` (1, 4) xyxy in pixels of the image file."""
    img = mmcv.imread(image_path)
    h, w = img.shape[:2]
    placeholder = [0.0, 0.0, float(w), float(h)]  # RefExpDataset's data info layout
    results = dict(img_path=image_path, img_id=0, text=text, gt_bbox_ori=placeholder,
                   instances=[dict(bbox=placeholder, bbox_label=0, ignore_flag=0)],
                   dataset_key='cli', split='cli')
    data = Compose(_test_pipeline(cfg))(results)
    if data is None:
        raise ValueError('the test pipeline dropped the sample')
    with torch.no_grad():
        return model.test_step(pseudo_collate([data]))[0]


@contextlib.contextmanager
def _stdout_to_stderr():
    """Send everything written to stdout (mmengine's and transformers' log handlers included,
    whatever stream object they hold) to stderr while the block runs."""
    sys.stdout.flush()
    try:
        fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # not real files (e.g. captured)
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    saved = os.dup(fd)
    os.dup2(err_fd, fd)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, fd)
        os.close(saved)


def main(argv=None):
    args = parse_args(argv)
    with _stdout_to_stderr():
        result, pred, img = _run(args)
    print(json.dumps(result, allow_nan=False), flush=True)
    visualizer = DetLocalVisualizer.get_instance('mmsidetune_ground')
    visualizer.dataset_meta = dict(classes=(args.text, ), palette=[(255, 64, 0)])
    drawn = DetDataSample(pred_instances=pred.cpu())
    os.makedirs(osp.dirname(osp.abspath(args.out_file)), exist_ok=True)
    visualizer.add_datasample('ground', mmcv.bgr2rgb(img), data_sample=drawn, draw_gt=False,
                              show=False, pred_score_thr=0.0, out_file=args.out_file)
    return result


def _run(args):
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint'),
                       (args.image, 'image')):
        if osp.isdir(path):
            sys.exit(f'ground: {what} {path} is a folder, not a file')
        if not osp.isfile(path):
            sys.exit(f'ground: {what} not found: {path}')
    if osp.getsize(args.image) == 0:
        sys.exit(f'ground: image {args.image} is an empty file (0 bytes)')
    try:
        from PIL import Image
        with Image.open(args.image) as im:  # reads the header only
            w, h = im.size
    except Exception:  # noqa: BLE001  (not a format PIL reads: mmcv decides below)
        w = h = 0
    if w * h > MAX_PIXELS:
        sys.exit(f'ground: image {args.image} is {w} x {h} pixels ({w * h / 1e6:.1f} MP), above '
                 f'the limit of {MAX_PIXELS / 1e6:.0f} MP: the model sees a few hundred pixels '
                 'a side; downscale the image first')
    if not args.text.strip():
        sys.exit('ground: empty phrase: give the referring expression with --text "..."')
    try:
        check_output_path(args.out_file, (args.config, args.checkpoint, args.image), args.force)
    except (ValueError, OSError) as e:
        sys.exit(f'ground: {e}')
    try:
        img = mmcv.imread(args.image)
    except Exception as e:  # decoding errors differ between image backends
        sys.exit(f'ground: cannot read image {args.image}: {e}')
    if img is None or img.size == 0:
        sys.exit(f'ground: cannot decode image {args.image} (corrupt or not an image)')

    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    language_model = getattr(model, 'language_model', None)
    if hasattr(language_model, 'check_phrase'):
        try:
            language_model.check_phrase(args.text)
        except ValueError as e:
            sys.exit(f'ground: {e}')
    try:
        load_weights(model, args.checkpoint)
    except (CheckpointReadError, CheckpointMismatchError, AdapterCheckpointError) as e:
        sys.exit(f'ground: {e}')
    model.to(args.device).eval()

    pred = ground(cfg, model, args.image, args.text).pred_instances
    box = [round(float(v), 2) for v in pred.bboxes[0].cpu()]
    if not all(math.isfinite(v) for v in box):
        sys.exit(f'ground: the model predicted a non-finite box {box} ({args.checkpoint} holds '
                 'NaN/inf weights, or the input broke the model); nothing drawn')
    return dict(bbox_xyxy=box, text=args.text, image=args.image), pred, img


if __name__ == '__main__':
    main()
