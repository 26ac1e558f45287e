"""The old name of :mod:`fpdctl.deploy.preprocess_decode` (pre-processing and decoding inside the
exported graph), kept so that code importing ``fpdctl.deploy.embed`` keeps working."""

from fpdctl.deploy.preprocess_decode import *  # noqa: F403
from fpdctl.deploy.preprocess_decode import __all__  # noqa: F401
