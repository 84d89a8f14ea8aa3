"""M2IST grounding detector (SPEC.md section 2): vision encoder, language model, M3ISA side
network, VL encoder neck, box head, detector and data preprocessor, each registered in
mmengine's root ``MODELS``."""
from .bbox_head import GroundingBoxHead
from .data_preprocessor import GroundingDataPreprocessor, build_pixel_mask
from .detector import TUNING_MODES, M2ISTGrounder
from .language_model import BertLanguageModel, resolve_model_path
from .m3isa import IEA, LEA, M3ISA, VEA, M3ISASideNetwork
from .transvg import CONVERTER_TAG, convert_transvg_detr, load_transvg_detr
from .vision_encoder import DETRVisionEncoder
from .vl_encoder import GroundingVLEncoder

__all__ = [
    'DETRVisionEncoder', 'BertLanguageModel', 'M3ISASideNetwork', 'M3ISA', 'VEA', 'LEA', 'IEA',
    'GroundingVLEncoder', 'GroundingBoxHead', 'M2ISTGrounder', 'GroundingDataPreprocessor',
    'TUNING_MODES', 'build_pixel_mask', 'convert_transvg_detr',
    'load_transvg_detr', 'resolve_model_path'
]
