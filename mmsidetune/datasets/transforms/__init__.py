"""Grounding transforms of the TransVG / M2IST training recipe; importing registers them in
mmengine's root ``TRANSFORMS``. Resizes, colour jitter and the random wrappers are mmcv's/mmdet's
own (``RandomChoiceResize``, ``mmdet.ResizeShortestEdge``, ``RandomApply``, ``RandomOrder``,
``Brightness``/``Contrast``/``Color``); see docs/refexp_data.md for the full table."""
from .box_mapping import canvas_to_original
from .flip import RandomFlipPhrase
from .formatting import GROUNDING_META_KEYS, PackGroundingInputs
from .loading import LoadSegAnnotations
from .pad import GroundingPad
from .phrase_words import names_direction, swap_words
from .resize_crop import DirectionAwareRandomChoice, RandomCropKeepBox

__all__ = [
    'DirectionAwareRandomChoice', 'RandomCropKeepBox', 'RandomFlipPhrase', 'GroundingPad',
    'PackGroundingInputs', 'GROUNDING_META_KEYS', 'canvas_to_original', 'names_direction',
    'swap_words', 'LoadSegAnnotations'
]
