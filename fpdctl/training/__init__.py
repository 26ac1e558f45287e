"""Training and Fast Pose Distillation: options, the FPD loss, the trainer and its run directory.

Importing this package is cheap (no torch); import the submodules for the real work:

- :mod:`~fpdctl.training.config`: the options (``TrainConfig``), presets, checks, schedules.
- :mod:`~fpdctl.training.sources`: where options come from (preset, YAML/TOML file, flags) and how they merge.
- :mod:`~fpdctl.training.loss`: the FPD loss, plain functions of tensors.
- :mod:`~fpdctl.training.precision`: ``--precision`` resolved for a device (autocast), and
  ``--deterministic`` (the algorithm choice).
- :mod:`~fpdctl.training.step`: one optimizer step (losses, gradients, update).
- :mod:`~fpdctl.training.trainer`: the ``Trainer``; :mod:`~fpdctl.training.loop`: its step loop.
- :mod:`~fpdctl.training.events`: what a run reports (progress events) and returns.
- :mod:`~fpdctl.training.run_dir`: the run directory, ``config.json`` and ``metrics.csv``.
- :mod:`~fpdctl.training.state`: ``state.pt``, the exact resume point.
- :mod:`~fpdctl.training.distributed`: torchrun, the per-step reduction, the resumable sampler.
- :mod:`~fpdctl.training.signals`: stopping cleanly on SIGINT / SIGTERM.
- :mod:`~fpdctl.training.plots`: ``curves.png``.
- :mod:`~fpdctl.training.skipped`: ``skipped_images.txt``, the images a run could not read.
"""
