"""Grounding datasets and transforms; importing registers them in mmengine's root registries."""
from .coco import ValidatedCocoDataset
from .refexp import DATASET_KEYS, RefExpDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['RefExpDataset', 'DATASET_KEYS', 'ValidatedCocoDataset']
