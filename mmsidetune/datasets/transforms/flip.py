"""Horizontal flip that keeps the phrase true (docs/refexp_data.md, "Augmentation")."""
from mmdet.datasets.transforms import RandomFlip
from mmengine.registry import TRANSFORMS

from .phrase_words import swap_words

__all__ = ['RandomFlipPhrase']

SWAP_PAIRS = (('left', 'right'), ('leftmost', 'rightmost'))


@TRANSFORMS.register_module()
class RandomFlipPhrase(RandomFlip):
    """mmdet's horizontal ``RandomFlip`` of image and box, plus a whole-word left<->right swap.

    TransVG replaces substrings ("bright" -> "bleft"); here only whole words are swapped, case and
    punctuation kept ("Left," -> "Right,", "left-hand" -> "right-hand", "bright" unchanged), see
    :func:`swap_words`.

    Required keys: ``img``, ``text``, ``gt_bboxes`` (optional). Modified: ``img``, ``gt_bboxes``,
    ``text``, ``homography_matrix``. Added: ``flip`` (bool), ``flip_direction``.

    Args:
        prob (float): flip probability. Defaults to 0.5.
        swap_pairs (tuple[tuple[str, str]]): words swapped with each other. Defaults to
            ``(('left', 'right'), ('leftmost', 'rightmost'))``.
    """

    def __init__(self, prob: float = 0.5, swap_pairs=SWAP_PAIRS):
        super().__init__(prob=prob, direction='horizontal')
        self.swap_pairs = tuple(tuple(p) for p in swap_pairs)

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        results['text'] = swap_words(results['text'], self.swap_pairs)
