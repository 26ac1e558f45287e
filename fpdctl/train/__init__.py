"""Training and Fast Pose Distillation: options, the FPD loss, the trainer and its run directory.

Importing this package is cheap (no torch); import the submodules for the real work:

- :mod:`~fpdctl.train.config`: the options (``TrainConfig``), presets, checks, schedules.
- :mod:`~fpdctl.train.sources`: where options come from (preset, YAML/TOML file, flags) and how they merge.
- :mod:`~fpdctl.train.loss`: the FPD loss, plain functions of tensors.
- :mod:`~fpdctl.train.precision`: ``--precision`` resolved for a device (autocast), and
  ``--deterministic`` (the algorithm choice).
- :mod:`~fpdctl.train.step`: one optimizer step (losses, gradients, update).
- :mod:`~fpdctl.train.trainer`: the ``Trainer``; :mod:`~fpdctl.train.loop`: its step loop.
- :mod:`~fpdctl.train.events`: what a run reports (progress events) and returns.
- :mod:`~fpdctl.train.run_dir`: the run directory, ``config.json`` and ``metrics.csv``.
- :mod:`~fpdctl.train.state`: ``state.pt``, the exact resume point.
- :mod:`~fpdctl.train.distributed`: torchrun, the per-step reduction, the resumable sampler.
- :mod:`~fpdctl.train.signals`: stopping cleanly on SIGINT / SIGTERM.
- :mod:`~fpdctl.train.plots`: ``curves.png``.
- :mod:`~fpdctl.train.skipped`: ``skipped_images.txt``, the images a run could not read.
"""

# `fpdctl.train(...)`, the Python API's call, is this package called (see make_callable).
from fpdctl.utils.callable_module import make_callable  # noqa: E402

make_callable(__name__, "fpdctl.api:train")
