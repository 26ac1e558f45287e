"""The pose network predict runs: a runner plus what feeding it needs (input size, input
convention, joint set), and the crop -> keypoints -> drawing steps of one image's persons."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from fpdctl.deploy.persons import Person
from fpdctl.pipeline import INFERENCE_BATCH_SIZE, check_batch_size

if TYPE_CHECKING:
    from fpdctl.deploy.persons import PersonBox
    from fpdctl.deploy.runtime import Runner
    from fpdctl.models.convention import ConventionOverride


class PoseModel:
    """A runner plus what feeding it needs: input size, input convention, joint set."""

    def __init__(
        self,
        model: str,
        device: str,
        threads: int | None,
        input_size: int | None,
        input_convention: "ConventionOverride | None" = None,
        backend: str = "auto",
        batch_size: int = INFERENCE_BATCH_SIZE,
    ) -> None:
        from fpdctl.deploy.backends import pick_backend
        from fpdctl.deploy.runtime import make_runner, open_model
        from fpdctl.utils.device import resolve_device

        # Crops per forward pass (persons_batch): memory is bounded by it, not by the crowd.
        self.batch_size = check_batch_size(batch_size)
        self.source = source = open_model(model, input_convention)
        self.input_size = source.input_size_for(input_size)
        onnx = source.kind == "onnx"
        run_on = str(resolve_device(device))
        if onnx and not run_on.startswith("cuda"):
            run_on = "cpu"  # ONNX Runtime runs on CUDA or the CPU (auto's mps is the CPU here)
        row = pick_backend(
            "onnx" if onnx else "torch",
            backend,
            device_type=run_on.split(":")[0],
            onnx_precision=source.precision if onnx else None,
        )
        self.runner: Runner = make_runner(source, row, device=run_on, threads=threads)
        # The model's own input convention (the checkpoint or export records it, or its format
        # implies it; the user may override it), never a module default.
        self.convention = source.input_convention
        self.joint_set = source.joint_set

    def crop(self, image: np.ndarray, center: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [S, S, 3] BGR crop around the person and its affine (image px -> input px)."""
        from fpdctl.pipeline import crop

        return crop(image, center, scale, self.input_size)

    def keypoints(self, patches: np.ndarray, affines: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Image-px keypoints [N, J, 2] and scores [N, J] for a batch of crops [N, S, S, 3]."""
        from fpdctl.deploy.metadata import GraphIO
        from fpdctl.pipeline import predict_crops

        if self.runner.io == GraphIO():
            return predict_crops(self.runner, patches, affines, self.convention)
        # An export with pre-processing or decoding inside: it takes the crops / returns keypoints.
        from fpdctl.data.transforms import invert_affine, transform_points
        from fpdctl.deploy.preprocess_decode import embedded_keypoints

        keypoints, scores = embedded_keypoints(self.runner, patches, self.convention)
        return transform_points(keypoints, np.stack([invert_affine(a) for a in affines])), scores

    def draw(self, image: np.ndarray, persons: Sequence[Person], min_score: float, boxed: bool) -> np.ndarray:
        """The image with every person's skeleton drawn, and their boxes when ``boxed``."""
        from fpdctl.viz import draw_persons

        if not persons:
            return np.ascontiguousarray(image).copy()
        joints = np.stack([p.keypoints for p in persons])
        scores = np.stack([p.scores for p in persons])
        boxes = np.array([p.box for p in persons], dtype=np.float64) if boxed else None
        return draw_persons(image, joints, self.joint_set, scores=scores, min_score=min_score, boxes=boxes)

    def persons_batch(
        self,
        images: Sequence[tuple[np.ndarray, Sequence["PersonBox"]]],
        batch_size: int | None = None,
    ) -> list[list[Person]]:
        """Every person of several images, cropped and run in chunks of ``batch_size`` crops.

        The one place persons are cropped and run: only one chunk of crops (and its heatmaps)
        exists at a time, so memory does not grow with the number of boxes. Each crop is
        independent of the others, so the keypoints do not depend on ``batch_size``.

        Args:
            images: (uint8 BGR [H, W, 3] image, its person boxes) pairs.
            batch_size: crops per forward pass; None: this model's :attr:`batch_size`.

        Returns:
            per image, its persons in box order.
        """
        size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        # (image index, box) of every person, in order: the chunks cut this flat list.
        todo = [(i, person) for i, (_image, found) in enumerate(images) for person in found]
        results: list[list[Person]] = [[] for _ in images]
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            crops, affines = [], []
            for i, person in chunk:
                patch, affine = self.crop(images[i][0], person.center, person.scale)
                crops.append(patch)
                affines.append(affine)
            coords, scores = self.keypoints(np.stack(crops), affines)
            del crops
            for n, (i, p) in enumerate(chunk):
                # Copies: a view would keep the whole chunk's arrays alive.
                results[i].append(Person(p.box, p.score, p.center, p.scale, coords[n].copy(), scores[n].copy()))
        return results

    def persons(self, image: np.ndarray, found: Sequence["PersonBox"]) -> list[Person]:
        """Every person of one image, in chunks of :attr:`batch_size` crops."""
        return self.persons_batch([(image, found)])[0]


__all__ = ["PoseModel"]
