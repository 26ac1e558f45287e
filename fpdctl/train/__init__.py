"""Training and Fast Pose Distillation: options, the FPD loss, the trainer and its run directory.

Importing this package is cheap (no torch); import the submodules for the real work:
:mod:`fpdctl.train.loss`, :mod:`fpdctl.train.config`, :mod:`fpdctl.train.trainer`.
"""
