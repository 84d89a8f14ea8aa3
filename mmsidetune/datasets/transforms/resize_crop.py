"""Random resize/crop selection of the TransVG / M2IST training recipe (TransVG's RandomSelect;
docs/refexp_data.md, "Augmentation")."""
import math

import numpy as np
from mmcv.transforms import BaseTransform, RandomChoice
from mmcv.transforms.utils import cache_randomness
from mmengine.registry import TRANSFORMS

from .phrase_words import DIRECTION_PREFIXES, names_direction

__all__ = ['DirectionAwareRandomChoice', 'RandomCropKeepBox']


@TRANSFORMS.register_module()
class DirectionAwareRandomChoice(RandomChoice):
    """mmcv's ``RandomChoice``, except that a phrase naming a direction always takes branch 0.

    The recipe (docs/refexp_data.md): if the phrase names a direction (left/right/top/bottom/
    middle) only resize; else with p=0.5 [resize, crop, resize]. Branch 0 is the resize-only
    branch. A phrase names a direction when one of its words STARTS with a direction word
    ("leftmost", "top-left"; not "bright"), see :func:`names_direction`: cropping could change
    which object is leftmost.

    Args:
        transforms (list[list[dict]]): the candidate pipelines, the resize-only one first.
        prob (list[float], optional): their probabilities, as mmcv's ``RandomChoice``.
        direction_prefixes (tuple[str]): the direction words. Defaults to
            ``('left', 'right', 'top', 'bottom', 'middle')``.

    Required keys: ``text`` and whatever the branches need.
    """

    def __init__(self, transforms, prob=None, direction_prefixes=DIRECTION_PREFIXES):
        super().__init__(transforms, prob=prob)
        self.direction_prefixes = tuple(direction_prefixes)

    def transform(self, results: dict):
        if names_direction(results['text'], self.direction_prefixes):
            return self.transforms[0](results)
        return super().transform(results)


@TRANSFORMS.register_module()
class RandomCropKeepBox(BaseTransform):
    """Crop a random ``w x h`` window (``min_size <= w, h <= max_size``) that contains the box.

    TransVG's ``RandomSizeCrop(384, 600)`` draws windows until one holds the box (20 tries, else no
    crop); here the window size and offset are drawn only among windows that hold the whole box
    (rounded outwards to pixels), so the box is never cut. When no such window exists (the image
    is smaller than ``min_size`` or the box is larger than ``max_size``), nothing is cropped.

    Required keys: ``img`` (H, W, 3), ``gt_bboxes`` (mmdet ``HorizontalBoxes``, the box in image
    pixels). Modified: ``img``, ``img_shape``, ``gt_bboxes`` (translated), ``homography_matrix``
    (the translation composed in). Added: ``crop_offset`` (top, left) in pixels of the input.

    Args:
        min_size (int): smallest window side in pixels. Defaults to 384.
        max_size (int): largest window side in pixels. Defaults to 600.

    Raises:
        ValueError: ``min_size > max_size`` or non-positive; ``KeyError``: no ``gt_bboxes`` (put
            ``LoadAnnotations(with_bbox=True)`` before).
    """

    def __init__(self, min_size: int = 384, max_size: int = 600):
        if not 0 < min_size <= max_size:
            raise ValueError(f'RandomCropKeepBox: need 0 < min_size <= max_size, got {min_size}, '
                             f'{max_size}')
        self.min_size, self.max_size = int(min_size), int(max_size)

    @cache_randomness
    def _window(self, img_hw, box):
        """(top, left, h, w) of a window holding ``box`` (x1, y1, x2, y2), or None."""
        out = []
        for size, lo_edge, hi_edge in ((img_hw[0], box[1], box[3]), (img_hw[1], box[0], box[2])):
            lo_edge, hi_edge = max(0, math.floor(lo_edge)), min(size, math.ceil(hi_edge))
            smallest = max(self.min_size, hi_edge - lo_edge)
            largest = min(size, self.max_size)
            if smallest > largest:
                return None
            length = np.random.randint(smallest, largest + 1)
            start = np.random.randint(max(0, hi_edge - length), min(lo_edge, size - length) + 1)
            out += [start, length]
        top, h, left, w = out
        return top, left, h, w

    def transform(self, results: dict) -> dict:
        boxes = results['gt_bboxes']
        t = boxes.tensor
        union = (t[:, 0].min().item(), t[:, 1].min().item(), t[:, 2].max().item(),
                 t[:, 3].max().item())
        window = self._window(results['img'].shape[:2], union)
        if window is None:
            return results
        top, left, h, w = window
        results['img'] = results['img'][top:top + h, left:left + w]
        results['img_shape'] = (h, w)
        boxes.translate_((-left, -top))
        results['crop_offset'] = (top, left)
        shift = np.array([[1, 0, -left], [0, 1, -top], [0, 0, 1]], dtype=np.float32)
        matrix = results.get('homography_matrix')
        results['homography_matrix'] = shift if matrix is None else shift @ matrix
        return results

    def __repr__(self):
        return f'{self.__class__.__name__}(min_size={self.min_size}, max_size={self.max_size})'
