"""Referring expression comprehension data: one sample per (image, expression, box).

Reads two formats (docs/refexp_data.md, "Formats read by `RefExpDataset`"):

* TransVG/ReSC split files ``<ds>/<ds>_<split>.pth``: a torch-pickled list of tuples. RefCOCO-family
  (``unc``, ``unc+``, ``gref``, ``gref_umd``) and ReferIt (``referit``) entries are
  ``(image_file, _, bbox, phrase, _)``; Flickr30k Entities (``flickr``) entries are
  ``(image_file, bbox, phrase)``. The RefCOCO family stores COCO ``xywh`` boxes, ReferIt and Flickr
  ``xyxy`` boxes.
* MDETR-style RefCOCO json (``final_refcoco_<split>.json``, also read by mmdet 3.3's evaluation-only
  ``MDETRStyleRefCocoDataset``): COCO json with one ``images`` entry per expression (its
  ``caption``) and exactly one annotation (COCO ``xywh`` box) per entry.
"""
import os.path as osp
import pickle
from typing import List, Optional, Sequence

from mmengine.dataset import BaseDataset
from mmengine.fileio import get_local_path
from mmengine.registry import DATASETS

from ..utils.checkpoint import CheckpointReadError, read_checkpoint_file

__all__ = ['RefExpDataset', 'DATASET_KEYS']

# dataset key -> box layout stored in its .pth entries
DATASET_KEYS = {
    'unc': 'xywh',  # RefCOCO
    'unc+': 'xywh',  # RefCOCO+
    'gref': 'xywh',  # RefCOCOg, Google split
    'gref_umd': 'xywh',  # RefCOCOg, UMD split
    'referit': 'xyxy',  # ReferItGame
    'flickr': 'xyxy',  # Flickr30k Entities
}
ANN_FORMATS = ('pth', 'json')


def _xyxy(bbox: Sequence[float], layout: str, where: str) -> List[float]:
    """Box as 4 floats ``[x1, y1, x2, y2]`` (pixels); ``ValueError`` if width or height <= 0."""
    if len(bbox) != 4:
        raise ValueError(f'{where}: a box has 4 numbers, got {list(bbox)!r}')
    x1, y1, a, b = (float(v) for v in bbox)
    x2, y2 = (x1 + a, y1 + b) if layout == 'xywh' else (a, b)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f'{where}: degenerate box {list(bbox)!r} ({layout}): width and height '
                         'must be > 0')
    return [x1, y1, x2, y2]


@DATASETS.register_module()
class RefExpDataset(BaseDataset):
    """Grounding dataset with one sample per referring expression (docs/refexp_data.md).

    Each data info holds ``img_path``, ``img_id``, ``text`` (the expression), ``gt_bbox_ori``
    (``[x1, y1, x2, y2]`` floats, original image pixels), ``dataset_key``, ``split`` and
    ``instances=[dict(bbox=gt_bbox_ori, bbox_label=0, ignore_flag=0)]`` so that mmdet's
    ``LoadAnnotations(with_bbox=True)`` loads the box. Boxes are kept as floats (TransVG truncates
    them to int).

    Args:
        ann_file (str): a ``.pth`` split file or an MDETR-style ``.json``, under ``data_root``.
        dataset_key (str): one of ``unc``, ``unc+``, ``gref``, ``gref_umd``, ``referit``,
            ``flickr``; decides the ``.pth`` entry layout and box layout (json boxes are always
            COCO ``xywh``).
        split (str, optional): split name written into every sample (the metric reports per
            split). Defaults to the file name's last ``_`` field, e.g. ``testA`` for
            ``unc_testA.pth`` or ``final_refcoco_testA.json``.
        ann_format (str, optional): ``'pth'`` or ``'json'``. Defaults to the file extension.
        check_image_size (bool): check at load time that every box lies inside its image
            (1 pixel of slack for rounded coordinates). The size comes from the json's
            ``width`` / ``height``, or for ``.pth`` files from the image file's header (read
            once per image, without decoding), so a missing or unreadable image is found at
            load time too. Defaults to True.
        weights_only (bool): load ``.pth`` files with ``torch.load(weights_only=True)``, which
            accepts the plain lists/tuples/str/numbers of TransVG's files and refuses any other
            pickled object. Set False only for a split file you trust (it then runs arbitrary
            pickle code). Defaults to True.
        data_root, data_prefix (``dict(img_path=...)``, the image folder), pipeline, test_mode,
        lazy_init, ...: as mmengine's ``BaseDataset``.

    Raises:
        ValueError: unknown ``dataset_key`` or ``ann_format``, a malformed entry, a degenerate box
            (width or height <= 0), a box outside its image or an empty expression (the message
            names the file and the entry); an annotation file that is empty, not JSON, or holds
            no sample; an image whose header cannot be read.
        FileNotFoundError: a missing annotation file; with ``check_image_size``, a ``.pth``
            entry's missing image.
        pickle.UnpicklingError: a ``.pth`` file holding more than plain Python objects while
            ``weights_only=True``.
    """

    METAINFO = dict(classes=('object', ))

    def __init__(self,
                 ann_file: str,
                 dataset_key: str,
                 split: Optional[str] = None,
                 ann_format: Optional[str] = None,
                 weights_only: bool = True,
                 check_image_size: bool = True,
                 data_prefix: dict = dict(img_path=''),
                 **kwargs):
        if dataset_key not in DATASET_KEYS:
            raise ValueError(f'RefExpDataset: unknown dataset_key {dataset_key!r}; expected one of '
                             f'{sorted(DATASET_KEYS)}')
        if ann_format is None:
            ann_format = osp.splitext(ann_file)[1].lstrip('.').lower()
        if ann_format not in ANN_FORMATS:
            raise ValueError(f'RefExpDataset: ann_format must be one of {ANN_FORMATS} (or given by '
                             f'the extension), got {ann_format!r} for {ann_file!r}')
        self.dataset_key = dataset_key
        self.split = split or osp.splitext(osp.basename(ann_file))[0].rsplit('_', 1)[-1]
        self.ann_format = ann_format
        self.weights_only = weights_only
        self.check_image_size = check_image_size
        self._sizes = {}
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'RefExpDataset: annotation file not found: {self.ann_file}')
        if osp.getsize(self.ann_file) == 0:
            raise ValueError(f'RefExpDataset: annotation file {self.ann_file} is empty (0 bytes)')
        load = self._load_pth if self.ann_format == 'pth' else self._load_json
        samples = [self._sample(*entry) for entry in load()]
        if not samples:
            raise ValueError(f'RefExpDataset: annotation file {self.ann_file} holds no samples')
        return samples

    def _image_size(self, img_path: str, where: str):
        """(width, height) from the image header, cached per file."""
        if img_path not in self._sizes:
            from PIL import Image
            if not osp.isfile(img_path):
                raise FileNotFoundError(f'{where}: image {img_path} not found')
            try:
                with Image.open(img_path) as im:
                    self._sizes[img_path] = im.size
            except Exception as e:  # noqa: BLE001  (PIL raises several types)
                raise ValueError(f'{where}: cannot read image {img_path}: '
                                 f'{type(e).__name__}: {e}') from e
        return self._sizes[img_path]

    def _check_inside(self, where: str, img_path: str, box, size=None) -> None:
        if not self.check_image_size:
            return
        w, h = size if size else self._image_size(img_path, where)
        x1, y1, x2, y2 = box
        if x1 < -1 or y1 < -1 or x2 > w + 1 or y2 > h + 1:
            raise ValueError(f'{where}: box {[round(v, 2) for v in box]} (x1, y1, x2, y2) is not '
                             f'inside its image {img_path} ({w} x {h} pixels)')

    def _load_pth(self):
        """Yield ``(where, image_file, img_id, bbox_xyxy, phrase)`` from a TransVG split file."""
        with get_local_path(self.ann_file) as path:
            try:
                entries = read_checkpoint_file(path, 'cpu', weights_only=self.weights_only)
            except CheckpointReadError as err:
                raise ValueError(f'RefExpDataset: cannot read annotation file {self.ann_file}: '
                                 f'{err}') from err
            except pickle.UnpicklingError as err:
                raise pickle.UnpicklingError(
                    f'RefExpDataset: {self.ann_file} holds more than plain lists, tuples, str and '
                    'numbers, so torch.load(weights_only=True) refused it. If you trust the file, '
                    f'set weights_only=False in the dataset config. torch said: {err}') from err
        if not isinstance(entries, (list, tuple)):
            raise ValueError(f'RefExpDataset: {self.ann_file} holds a {type(entries).__name__}, '
                             'expected a list of TransVG entries')
        n_fields = 3 if self.dataset_key == 'flickr' else 5
        for i, entry in enumerate(entries):
            where = f'{self.ann_file} entry {i}'
            if not isinstance(entry, (list, tuple)) or len(entry) != n_fields:
                raise ValueError(f'{where}: a {self.dataset_key!r} entry has {n_fields} fields '
                                 f'(docs/refexp_data.md), got {entry!r}')
            if n_fields == 3:
                img_file, bbox, phrase = entry
            else:
                img_file, _, bbox, phrase, _ = entry
            box = _xyxy(bbox, DATASET_KEYS[self.dataset_key], where)
            yield where, img_file, osp.splitext(img_file)[0], box, phrase

    def _load_json(self):
        """Yield ``(where, image_file, img_id, bbox_xyxy, phrase)`` from an MDETR-style json."""
        from mmdet.datasets.api_wrappers import COCO
        with get_local_path(self.ann_file) as path:
            try:
                coco = COCO(path)
            except ValueError as e:  # json.JSONDecodeError
                raise ValueError(f'RefExpDataset: {self.ann_file} is not valid JSON: {e}') from e
            except (KeyError, TypeError, AssertionError) as e:
                raise ValueError(f'RefExpDataset: {self.ann_file} is not an MDETR-style COCO json '
                                 f'(needs images and annotations): {type(e).__name__}: {e}'
                                 ) from e
        if not coco.get_img_ids():
            raise ValueError(f'RefExpDataset: {self.ann_file} holds no images (expressions)')
        for img_id in coco.get_img_ids():
            info = coco.load_imgs([img_id])[0]
            where = f'{self.ann_file} image id {img_id}'
            anns = coco.load_anns(coco.get_ann_ids(img_ids=[img_id]))
            if len(anns) != 1 or 'caption' not in info:
                raise ValueError(f'{where}: an MDETR-style RefCOCO entry has a caption and exactly '
                                 f'one annotation, got {len(anns)} annotations')
            box = _xyxy(anns[0]['bbox'], 'xywh', where)
            size = (info['width'], info['height']) if 'width' in info and 'height' in info \
                else None
            yield where, info['file_name'], img_id, box, info['caption'], size

    def _sample(self, where, img_file, img_id, box, phrase, size=None) -> dict:
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValueError(f'{where}: empty referring expression {phrase!r}')
        img_path = osp.join(self.data_prefix.get('img_path', ''), img_file)
        self._check_inside(where, img_path, box, size)
        return dict(
            img_path=img_path,
            img_id=img_id,
            text=phrase.strip(),
            gt_bbox_ori=box,
            dataset_key=self.dataset_key,
            split=self.split,
            instances=[dict(bbox=list(box), bbox_label=0, ignore_flag=0)])
