"""mmdet's ``CocoDataset`` that says what it drops and names the file it cannot read."""
import json
import os.path as osp
from typing import List

from mmdet.datasets import CocoDataset
from mmengine.logging import print_log
from mmengine.registry import DATASETS

__all__ = ['ValidatedCocoDataset']


@DATASETS.register_module()
class ValidatedCocoDataset(CocoDataset):
    """mmdet 3.3's ``CocoDataset`` with the same samples, plus what it leaves unsaid.

    A drop-in for ``type='CocoDataset'`` (every argument, the data infos and the filtering are
    mmdet's). mmdet silently skips annotations whose box is degenerate: width or height < 1 px,
    ``area <= 0``, or no overlap with the image. This subclass counts them and:

    * warns once with the counts and the first few (file name, annotation id, box);
    * raises when the file has annotations of the dataset's classes but none is left, instead
      of training a detector on background only.

    Annotation files are checked before mmdet reads them: a missing, empty (0-byte), non-JSON
    or image-less file raises naming the file. Used by mmsidetune's COCO configs; mmdet users
    switch by changing ``type`` alone (a subclass rather than a transform: the drop happens in
    ``parse_data_info``, before any transform sees the sample).

    Raises:
        FileNotFoundError: a missing annotation file.
        ValueError: an empty / invalid / image-less annotation file, or every box of the
            dataset's classes degenerate.
    """

    def load_data_list(self) -> List[dict]:
        path = self.ann_file
        if '://' not in str(path):
            if not osp.isfile(path):
                raise FileNotFoundError(f'{type(self).__name__}: annotation file {path} not found')
            if osp.getsize(path) == 0:
                raise ValueError(f'{type(self).__name__}: annotation file {path} is empty '
                                 '(0 bytes)')
            try:
                with open(path) as f:
                    head = json.load(f)
            except ValueError as e:
                raise ValueError(f'{type(self).__name__}: annotation file {path} is not valid '
                                 f'JSON: {e}') from e
            if not isinstance(head, dict) or not head.get('images'):
                raise ValueError(f'{type(self).__name__}: annotation file {path} holds no '
                                 '"images" (not a COCO instances file?)')
            del head
        self._degenerate, self._counted = [], 0
        data_list = super().load_data_list()
        kept = self._counted - len(self._degenerate)
        if self._degenerate:
            examples = ', '.join(f'{f} ann {i} bbox {b}' for f, i, b in self._degenerate[:3])
            print_log(f'{type(self).__name__}: {len(self._degenerate)} of {self._counted} boxes '
                      f'in {path} dropped as degenerate (w or h < 1 px, area <= 0, or outside '
                      f'the image), e.g. {examples}', logger='current', level=30)
        if self._counted and not kept:
            raise ValueError(f'{type(self).__name__}: every one of the {self._counted} boxes of '
                             f'the classes {self.metainfo["classes"][:5]}... in {path} is '
                             'degenerate (w or h < 1 px, area <= 0, or outside the image): '
                             'nothing left to train on')
        return data_list

    def parse_data_info(self, raw_data_info: dict):
        img = raw_data_info['raw_img_info']
        for ann in raw_data_info['raw_ann_info']:
            if ann.get('ignore', False) or ann.get('category_id') not in self.cat_ids:
                continue
            self._counted += 1
            x1, y1, w, h = ann['bbox']
            inter_w = max(0, min(x1 + w, img['width']) - max(x1, 0))
            inter_h = max(0, min(y1 + h, img['height']) - max(y1, 0))
            if inter_w * inter_h == 0 or ann.get('area', w * h) <= 0 or w < 1 or h < 1:
                self._degenerate.append((img.get('file_name'), ann.get('id'), ann['bbox']))
        return super().parse_data_info(raw_data_info)
