"""The prune-sweep experiment: which student to distil, measured rather than guessed.

It sits above pruning, training and deployment and composes them. Importing this package is cheap
(no torch); the submodules do the work: :mod:`fpdctl.sweep.grid` (the configs and shards),
:mod:`fpdctl.sweep.api` (``prune_sweep``, ``sweep_summary``: the whole sweep, every rule checked),
:mod:`fpdctl.sweep.run` (``SweepSettings``, ``run_sweep``), :mod:`fpdctl.sweep.results` (the
per-config JSON files, ``summarize``), :mod:`fpdctl.sweep.pareto` (fronts and the recommendation)
and :mod:`fpdctl.sweep.plot` (``sweep.png``).
"""
