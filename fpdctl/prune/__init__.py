"""Pruning: slice a trained hourglass into a smaller one, and sweep students for FPD.

Importing this package is cheap (no torch); the submodules do the work:
:mod:`fpdctl.prune.slicing` (``slice_model``, ``prune_checkpoint``), :mod:`fpdctl.prune.layout`
(which tensors share a channel dimension), :mod:`fpdctl.prune.importance` (BN / L1 scores),
:mod:`fpdctl.prune.sweep` (``run_sweep``, ``summarize``), :mod:`fpdctl.prune.pareto` and
:mod:`fpdctl.prune.plot`.
"""
