"""Does an exported model compute what the PyTorch model computes?

Two checks, both on fixed inputs so a result can be reproduced:

* :func:`verify_runner` runs the export and eager fp32 PyTorch on the same inputs (random normal
  tensors, which exercise every value range, and synthetic validation images, which give
  realistic peaked heatmaps) and reports the largest absolute and relative heatmap error and how
  often both put a joint at the same heatmap pixel (argmax) - the decoded keypoint is a function
  of that pixel and its neighbours.
* :func:`compare_accuracy` scores two runners (fp32 and reduced precision) with the evaluation
  pipeline and defaults of ``fpdctl eval`` (:func:`fpdctl.evaluation.evaluate_model`, the flip test
  on, the whole validation split) for the accuracy cost of fp16 / int8 in the metric users quote
  (PCKh or PCK): the figures are those ``fpdctl eval`` gives each file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from fpdctl.data.kinds import DataSpec
    from fpdctl.deploy.runtime import Runner
    from fpdctl.metrics import AccuracyResult
    from fpdctl.models.convention import InputConvention
    from fpdctl.models.hourglass import HourglassNet

# Inputs are drawn from this seed so that two verifications of one export compare the same data.
VERIFY_SEED: int = 0
# Where the reference output is this close to zero, a relative error says nothing; the relative
# error is therefore taken against the largest reference magnitude (the heatmap's dynamic range).
_TINY: float = 1e-12


@dataclass(frozen=True)
class VerificationReport:
    """How closely an export matches eager fp32 PyTorch.

    Attributes:
        precision: the export's precision.
        random_samples: random-normal input images compared.
        image_samples: synthetic validation images compared.
        batch_sizes: batch sizes the export was run at.
        max_abs_error: largest |export - torch| over all heatmap values.
        mean_abs_error: mean |export - torch|.
        max_rel_error: ``max_abs_error / max |torch|``: the error relative to the heatmaps' range.
        keypoint_agreement: share of (image, joint) pairs whose final-stack heatmap argmax pixel
            is the same in both, over all images.
        image_keypoint_agreement: the same over the validation images only.
        joints_compared: (image, joint) pairs compared.
        finite: every output value is finite (fp16 can overflow to inf).
        min_agreement: the agreement this precision must reach, or None (reported only).
    """

    precision: str
    random_samples: int
    image_samples: int
    batch_sizes: tuple[int, ...]
    max_abs_error: float
    mean_abs_error: float
    max_rel_error: float
    keypoint_agreement: float
    image_keypoint_agreement: float
    joints_compared: int
    finite: bool
    min_agreement: float | None

    @property
    def passed(self) -> bool:
        if not self.finite:
            return False
        return self.min_agreement is None or self.keypoint_agreement >= self.min_agreement

    def failure_message(self) -> str:
        """One line saying why the check failed (empty when it passed)."""
        if self.passed:
            return ""
        if not self.finite:
            return f"{self.precision} export produces non-finite heatmaps (NaN or inf)"
        disagree = round((1.0 - self.keypoint_agreement) * self.joints_compared)
        return (
            f"{self.precision} export disagrees with PyTorch: heatmap argmax differs for {disagree} "
            f"of {self.joints_compared} joints (agreement {100 * self.keypoint_agreement:.2f}% < "
            f"{100 * (self.min_agreement or 0):.2f}%), max abs error {self.max_abs_error:.3g}"
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["batch_sizes"] = list(self.batch_sizes)
        out["passed"] = self.passed
        return out


def argmax_pixels(heatmaps: np.ndarray) -> np.ndarray:
    """The flat argmax pixel of each map: [N, J, h, w] -> int [N, J]."""
    n, j = heatmaps.shape[:2]
    return heatmaps.reshape(n, j, -1).argmax(axis=2)


def verification_inputs(
    input_size: int,
    random_samples: int,
    image_samples: int,
    seed: int = VERIFY_SEED,
    convention: "InputConvention | None" = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The fixed verification inputs.

    Args:
        convention: the model's input convention (None: NATIVE), that the image crops are in.

    Returns:
        random: float32 [random_samples, 3, S, S], standard normal.
        images: float32 [image_samples, 3, S, S], synthetic validation crops, normalised.
    """
    from fpdctl.models.convention import NATIVE, convert_array

    rng = np.random.default_rng(seed)
    random = rng.standard_normal((random_samples, 3, input_size, input_size)).astype(np.float32)
    if image_samples > 0:
        from fpdctl.data.registry import build_dataset

        dataset = build_dataset("synthetic", "val", input_size=input_size)
        count = min(image_samples, len(dataset))
        images = np.stack([dataset[i]["image"].numpy() for i in range(count)]).astype(np.float32)
        images = convert_array(images, NATIVE, convention or NATIVE)
    else:
        images = np.zeros((0, 3, input_size, input_size), dtype=np.float32)
    return random, images


def verify_runner(
    runner: "Runner",
    net: "HourglassNet",
    *,
    input_size: int,
    precision: str,
    min_agreement: float | None,
    random_samples: int = 4,
    image_samples: int = 8,
    seed: int = VERIFY_SEED,
) -> VerificationReport:
    """Compare ``runner`` with eager fp32 PyTorch on fixed inputs.

    Random and image inputs run as two separate batches (two batch sizes for a dynamic-batch
    export; fixed-batch runners split and pad them).

    Args:
        runner: the export under test.
        net: the PyTorch model it was exported from.
        input_size: square input side in px.
        precision: the export's precision (for the report).
        min_agreement: the keypoint agreement required, or None.
        random_samples, image_samples: how many inputs of each kind.
        seed: seed of the random inputs.
    """
    from fpdctl.deploy.backends import get_backend
    from fpdctl.deploy.runtime import TorchRunner
    from fpdctl.pipeline import last_stack

    reference = TorchRunner(net, get_backend("torch"), "cpu", all_stacks=runner.all_stacks)
    random, images = verification_inputs(
        input_size,
        random_samples,
        image_samples,
        seed,
        convention=getattr(net, "input_convention", None),
    )
    batches = [b for b in (random, images) if b.shape[0] > 0]
    if not batches:
        raise ValueError("verification needs at least one input")
    expected = [reference(b) for b in batches]
    actual = [runner(b) for b in batches]

    finite = all(bool(np.isfinite(a).all()) for a in actual)
    diffs = [np.abs(a.astype(np.float64) - e) for a, e in zip(actual, expected)]
    max_abs = max(float(d.max()) for d in diffs) if finite else float("inf")
    mean_abs = float(np.concatenate([d.ravel() for d in diffs]).mean()) if finite else float("inf")
    scale = max(float(np.abs(e).max()) for e in expected)
    agree = [argmax_pixels(last_stack(a)) == argmax_pixels(last_stack(e)) for a, e in zip(actual, expected)]
    all_agree = np.concatenate([m.ravel() for m in agree])
    image_agree = agree[-1].ravel() if images.shape[0] > 0 else np.zeros(0, dtype=bool)
    return VerificationReport(
        precision=precision,
        random_samples=int(random.shape[0]),
        image_samples=int(images.shape[0]),
        batch_sizes=tuple(sorted({runner.batch or b.shape[0] for b in batches})),
        max_abs_error=max_abs,
        mean_abs_error=mean_abs,
        max_rel_error=max_abs / max(scale, _TINY),
        keypoint_agreement=float(all_agree.mean()),
        image_keypoint_agreement=float(image_agree.mean()) if image_agree.size else float("nan"),
        joints_compared=int(all_agree.size),
        finite=finite,
        min_agreement=min_agreement,
    )


@dataclass(frozen=True)
class AccuracyComparison:
    """The accuracy of an fp32 model and of its reduced-precision export on the same persons.

    Attributes:
        data: the ``--data`` spec of the split.
        split: "val".
        samples: persons scored (the first ones of the split, or all of it).
        metric: "pckh" or "pck".
        reference_precision, candidate_precision: e.g. "fp32" and "int8".
        reference, candidate: the full results (per joint, per part, both means).
    """

    data: "str | DataSpec"
    split: str
    samples: int
    metric: str
    reference_precision: str
    candidate_precision: str
    reference: "AccuracyResult"
    candidate: "AccuracyResult"
    flip_test: bool = True
    whole_split: bool = True

    @property
    def protocol(self) -> str:
        """How the figures were measured, in one line (they are what ``fpdctl eval`` gives the
        files, with ``--no-flip-test`` where the flip test is off)."""
        persons = f"all {self.samples}" if self.whole_split else f"the first {self.samples}"
        return (
            f"fpdctl eval pipeline, flip test {'on' if self.flip_test else 'off'}, {persons} persons of "
            f"the {self.data} {self.split} split"
        )

    @property
    def reference_mean(self) -> float:
        return float(self.reference.mean)

    @property
    def candidate_mean(self) -> float:
        return float(self.candidate.mean)

    @property
    def drop(self) -> float:
        """Points lost by the reduced precision (positive: worse)."""
        return self.reference_mean - self.candidate_mean

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": str(self.data),
            "split": self.split,
            "samples": self.samples,
            "metric": self.metric,
            "reference_precision": self.reference_precision,
            "candidate_precision": self.candidate_precision,
            "reference_mean": self.reference_mean,
            "candidate_mean": self.candidate_mean,
            "drop": self.drop,
            "flip_test": self.flip_test,
            "whole_split": self.whole_split,
            "protocol": self.protocol,
            "reference": self.reference.to_dict(),
            "candidate": self.candidate.to_dict(),
        }


def score_runners(
    runners: "list[Runner]",
    *,
    data: str,
    input_size: int,
    samples: int | None = None,
    flip_test: bool = True,
    batch_size: int | None = None,
    input_convention: "InputConvention | None" = None,
) -> tuple[int, str, "list[AccuracyResult]"]:
    """Score runners on ``data``'s validation split with :func:`fpdctl.evaluation.evaluate_model`,
    the function ``fpdctl eval`` scores with, and its defaults.

    Args:
        samples: score only the first this many persons (None: the whole split, as eval does).
        flip_test: the flip test (eval's default); off for a deployed single forward.
        batch_size: persons per forward (None: eval's); a fixed-batch runner takes its own.
        input_convention: the runners' (None: NATIVE): the dataset's crops are converted to it.

    Returns:
        (persons scored, the metric's name, one result per runner).
    """
    from fpdctl.data.registry import build_dataset
    from fpdctl.data.subset import FirstPersons
    from fpdctl.evaluation import evaluate_model
    from fpdctl.models.convention import NATIVE

    dataset = build_dataset(data, "val", input_size=input_size)
    if samples is not None:
        dataset = FirstPersons(dataset, samples)
    batch = {} if batch_size is None else {"batch_size": batch_size}
    results = [
        evaluate_model(  # type: ignore[arg-type]
            runner,
            dataset,
            flip_test=flip_test,
            device="cpu",
            input_convention=input_convention or NATIVE,
            **({"batch_size": runner.batch} if runner.batch else batch),
        ).metric
        for runner in runners
    ]
    return len(dataset), str(dataset.metric), results


def compare_accuracy(
    reference: "Runner",
    candidate: "Runner",
    *,
    data: str,
    input_size: int,
    samples: int | None = None,
    flip_test: bool = True,
    reference_precision: str = "fp32",
    candidate_precision: str = "int8",
    batch_size: int | None = None,
    input_convention: "InputConvention | None" = None,
) -> AccuracyComparison:
    """Score two runners on ``data``'s validation split the way ``fpdctl eval`` scores a file.

    Both go through :func:`fpdctl.evaluation.evaluate_model` (the pipeline of ``fpdctl eval``: crop,
    final stack, the flip test, decode, inverse affine, the dataset's metric) with eval's
    defaults, so each figure is what ``fpdctl eval FILE --data DATA`` prints for that file.

    Args:
        samples: only the first this many persons (None: the whole split, as eval).
        flip_test: the flip test (on, as eval); off for what a deployed single forward scores.
        batch_size, input_convention: as :func:`score_runners`.

    Raises:
        UsageError / InputError / DataError: a bad data spec or an unscorable split.
    """
    count, metric, results = score_runners(
        [reference, candidate],
        data=data,
        input_size=input_size,
        samples=samples,
        flip_test=flip_test,
        batch_size=batch_size,
        input_convention=input_convention,
    )
    return AccuracyComparison(
        data=str(data),
        split="val",
        samples=count,
        metric=metric,
        reference_precision=reference_precision,
        candidate_precision=candidate_precision,
        reference=results[0],
        candidate=results[1],
        flip_test=flip_test,
        whole_split=samples is None,
    )


__all__ = [
    "AccuracyComparison",
    "VerificationReport",
    "argmax_pixels",
    "compare_accuracy",
    "score_runners",
    "verification_inputs",
    "verify_runner",
]
