"""Tuning methods, one file each; importing registers them in
:data:`~mmsidetune.tuners.TUNING_METHODS` in display order (bench's ``--methods all``)."""
from .base import ACTIVATIONS, TuningMethod  # isort: skip
from .full import Full  # isort: skip
from .frozen import Frozen  # isort: skip
from .partial import Partial  # isort: skip
from .bitfit import BitFit  # isort: skip
from .adapter import Adapter  # isort: skip
from .lora import LoRA  # isort: skip
from .adaptformer import AdaptFormer  # isort: skip
from .lorand import LoRand  # isort: skip
from .mona import Mona  # isort: skip
from .e3va import DTYPES, E3VA  # isort: skip

__all__ = ['TuningMethod', 'ACTIVATIONS', 'Full', 'Frozen', 'Partial', 'BitFit', 'Adapter', 'LoRA',
           'AdaptFormer', 'LoRand', 'Mona', 'E3VA', 'DTYPES']
