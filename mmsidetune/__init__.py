"""mmsidetune: parameter-, memory- and time-efficient tuning for MMDetection and MMSegmentation.

Importing the package registers every module in mmengine's root registries, so the same names
build from mmdet- and mmseg-scoped configs::

    custom_imports = dict(imports=['mmsidetune'], allow_failed_imports=False)
"""
import warnings

# setuptools >= 80.9 warns (UserWarning) each time ``pkg_resources`` is imported or reloaded, and
# mmengine's ``is_installed`` (behind every ``mmdet::`` / ``mmseg::`` base config) imports and
# reloads it: three warnings per command about mmengine's code, not the user's. This exact
# message is the only one hidden; docs/cost_accounting.md ("Quiet logs").
warnings.filterwarnings('ignore', message=r'pkg_resources is deprecated as an API',
                        category=UserWarning)
from . import tuners, backbones, cost, hooks, optim, utils  # noqa: F401  (registers modules)
from . import grounding  # noqa: F401  (registers modules)
from . import datasets  # noqa: F401  (registers modules)
from . import evaluation  # noqa: F401  (registers modules)

__version__ = '0.1.0'
