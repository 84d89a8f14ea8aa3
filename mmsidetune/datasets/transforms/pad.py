"""Zero padding onto a fixed canvas (640x640, random offset in training; docs/refexp_data.md)."""
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmengine.registry import TRANSFORMS

__all__ = ['GroundingPad']


@TRANSFORMS.register_module()
class GroundingPad(BaseTransform):
    """Place the image on a zero canvas of ``size``, at a random offset or centred.

    TransVG's ``NormalizeAndPad``: with ``random_offset`` the content's top-left corner is drawn
    uniformly among the positions that keep it inside the canvas (training); otherwise it is
    centred (``top = (Hp - h) // 2``, test). The pixel mask is not made here: the model's data
    preprocessor builds it from ``pad_shape``, ``img_shape`` and ``pad_offset``.

    Required keys: ``img`` (h, w, 3) uint8, ``gt_bboxes`` (optional). Modified: ``img`` (Hp, Wp, 3),
    ``gt_bboxes`` (translated to canvas pixels), ``homography_matrix``. ``img_shape`` stays (h, w),
    the content size. Added: ``pad_shape`` (Hp, Wp), ``pad_offset`` (top, left) in pixels.

    Args:
        size (tuple[int, int]): canvas (Hp, Wp) in pixels. Defaults to (640, 640).
        random_offset (bool): random placement (training) or centred (test). Defaults to False.

    Raises:
        ValueError: the image is larger than the canvas (resize before padding).
    """

    def __init__(self, size=(640, 640), random_offset: bool = False):
        self.size = (int(size[0]), int(size[1]))
        self.random_offset = random_offset

    @cache_randomness
    def _offset(self, spare_h: int, spare_w: int):
        if self.random_offset:
            return np.random.randint(spare_h + 1), np.random.randint(spare_w + 1)
        return spare_h // 2, spare_w // 2

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        hp, wp = self.size
        if h > hp or w > wp:
            raise ValueError(f'GroundingPad: image {h}x{w} does not fit the {hp}x{wp} canvas; '
                             'resize its long side to at most the canvas size first')
        top, left = (int(v) for v in self._offset(hp - h, wp - w))
        canvas = np.zeros((hp, wp) + img.shape[2:], dtype=img.dtype)
        canvas[top:top + h, left:left + w] = img
        results['img'] = canvas
        results['img_shape'] = (h, w)
        results['pad_shape'] = (hp, wp)
        results['pad_offset'] = (top, left)
        if results.get('gt_bboxes') is not None:
            results['gt_bboxes'].translate_((left, top))
        shift = np.array([[1, 0, left], [0, 1, top], [0, 0, 1]], dtype=np.float32)
        matrix = results.get('homography_matrix')
        results['homography_matrix'] = shift if matrix is None else shift @ matrix
        return results

    def __repr__(self):
        return f'{self.__class__.__name__}(size={self.size}, random_offset={self.random_offset})'
