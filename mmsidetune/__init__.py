"""mmsidetune: parameter-, memory- and time-efficient tuning for MMDetection and MMSegmentation.

Importing the package registers every module in mmengine's root registries, so the same names
build from mmdet- and mmseg-scoped configs::

    custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)
"""
from . import tuners, backbones, cost, hooks, optim, utils  # noqa: F401  (registers modules)
from . import grounding  # noqa: F401  (registers modules)
from . import datasets  # noqa: F401  (registers modules)
from . import evaluation  # noqa: F401  (registers modules)

__version__ = '0.1.0'
