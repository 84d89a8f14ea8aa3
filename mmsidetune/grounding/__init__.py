"""M2IST grounding detector (docs/m2ist.md; the M2IST paper, arXiv 2407.01131, Fig. 2): vision
encoder, language model, the M2IST tuning method and its M3ISA layers, VL encoder neck, box head,
detector and data preprocessor, each registered in mmengine's root ``MODELS`` (the method in
:data:`~mmsidetune.tuners.TUNING_METHODS`, the config switching in the tuner core's
:func:`~mmsidetune.tuners.find_model_tuning`)."""
from .bbox_head import GroundingBoxHead
from .data_preprocessor import GroundingDataPreprocessor, build_pixel_mask
from .encoders import GroundingEncoders, GroundingInputs
from .m3isa import IEA, LEA, M3ISA, VEA
from .m2ist import M2IST
from .detector import M2ISTGrounder
from .language_model import BertLanguageModel, resolve_model_path
from .transvg import CONVERTER_TAG, convert_transvg_detr, load_transvg_detr
from .tuning import GrounderTuning
from .vision_encoder import DETRVisionEncoder
from .vl_encoder import GroundingVLEncoder

__all__ = [
    'DETRVisionEncoder', 'BertLanguageModel', 'GroundingEncoders', 'GroundingInputs', 'M2IST',
    'M3ISA', 'VEA', 'LEA', 'IEA', 'GroundingVLEncoder', 'GroundingBoxHead', 'M2ISTGrounder',
    'GrounderTuning', 'GroundingDataPreprocessor', 'build_pixel_mask', 'convert_transvg_detr',
    'load_transvg_detr', 'resolve_model_path'
]
