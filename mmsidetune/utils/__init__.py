"""Glue around mmengine: trusted checkpoint loading."""
from .checkpoint import is_trusted_checkpoint, trust_checkpoint

__all__ = ['trust_checkpoint', 'is_trusted_checkpoint']
