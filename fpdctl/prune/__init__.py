"""Pruning: slice a trained hourglass into a smaller one.

Importing this package is cheap (no torch); the submodules do the work:
:mod:`fpdctl.prune.slicing` (``slice_model``, ``prune_checkpoint``), :mod:`fpdctl.prune.layout`
(which tensors share a channel dimension), :mod:`fpdctl.prune.importance` (BN / L1 scores) and
:mod:`fpdctl.prune.calibrate` (BN re-estimation). The sweep that compares pruned students lives
in :mod:`fpdctl.sweep`.
"""
