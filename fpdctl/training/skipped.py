"""The images a training run could not read: ``skipped_images.txt`` in the run directory.

A training sample whose image cannot be decoded becomes a grey crop with every target weight 0
(:class:`~fpdctl.data.dataset.PoseDataset`): it teaches nothing and the run goes on, until more
than a small fraction of the images seen is bad (``max_bad_fraction``), when the dataset stops the
run. Nothing is skipped silently: each such image is named once, with the step that met it first,
in the run's log (a ``train.skipped`` event) and in this file, one line per image::

    <step>\\t<why the image could not be read, naming the file>

The file is rewritten atomically when a new image is met, and read back on ``--resume`` so the
list keeps every image of the whole run.
"""

from __future__ import annotations

from pathlib import Path

from fpdctl.utils.io import atomic_write_text

SKIPPED_FILE = "skipped_images.txt"


class SkippedImages:
    """The unreadable images of a run, in the order they were first met.

    Args:
        run_dir: the run directory (the file is :data:`SKIPPED_FILE` in it).
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / SKIPPED_FILE
        self.first_step: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.first_step)

    def load(self) -> None:
        """Read the images an earlier part of the run (before ``--resume``) recorded."""
        if not self.path.is_file():
            return
        for line in self.path.read_text(encoding="utf-8").splitlines():
            step, tab, error = line.partition("\t")
            if tab and step.strip().isdigit() and error:
                self.first_step.setdefault(error, int(step))

    def add(self, step: int, errors: list[str]) -> list[str]:
        """Record ``errors`` (one per unreadable image) met at ``step``.

        Returns:
            The errors not recorded before (the file is rewritten when there are any).
        """
        new = [e for e in dict.fromkeys(errors) if e and e not in self.first_step]
        for error in new:
            self.first_step[error] = int(step)
        if new:
            text = "".join(f"{s}\t{e}\n" for e, s in self.first_step.items())
            atomic_write_text(self.path, text)
        return new


__all__ = ["SKIPPED_FILE", "SkippedImages"]
