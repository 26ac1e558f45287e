"""Training options: one frozen dataclass, its presets, its checks and the learning-rate schedule.

Where a value comes from (presets, config files, flags) and how the layers merge is
:mod:`fpdctl.training.sources`; this module is what every layer is checked against.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

from fpdctl.data.kinds import DataSpec, parse_data_spec
from fpdctl.data.transforms import AUGMENT_STYLES, DEFAULT_AUGMENT_STYLE
from fpdctl.data.unlabeled import DEFAULT_UNLABELED_RATIO, check_unlabeled
from fpdctl.errors import UsageError
from fpdctl.models.convention import ConventionOverride
from fpdctl.models.spec import DEFAULT_INPUT_SIZE, STUDENT_MODEL, TEACHER_MODEL, resolve_spec
from fpdctl.training.loss import (
    DEFAULT_ALPHA,
    DEFAULT_ALPHA_SCHEDULE,
    DEFAULT_KD_LOSS,
    DEFAULT_KD_TEMPERATURE,
    GROUND_TRUTH_TEACHER,
    KD_LOSSES,
    KdSettings,
)
from fpdctl.training.schedule import parse_schedule
from fpdctl.utils.choices import match_choice

OPTIMIZERS: tuple[str, ...] = ("adam", "rmsprop", "sgd")
# Training precisions (autocast), see fpdctl.training.precision; export precisions are another set.
TRAIN_PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp16", "fp32")
COMMANDS: tuple[str, ...] = ("train", "distill")
# Seeds are 32-bit, as numpy's; the trainer's per-epoch generator seeds (seed * 1_000_003 +
# epoch) then stay within torch's 64-bit range.
MAX_SEED = 2**32 - 1

# Options a resumed run may change: they affect speed, logging and length, never the arithmetic
# of a step, so the resumed run still continues the same trajectory.
RESUMABLE_CHANGES: frozenset[str] = frozenset(
    {
        "max_steps",
        "epochs",
        "device",
        "workers",
        "log_every",
        "eval_every",
        "save_every",
        "compile",
        "eval_batch_size",
        "out",
        "deterministic",
        "tensorboard",
    }
)

# The official runs: 4 images per step on one GPU (``BATCH_SIZE_PER_GPU 4``, ``GPUS '(0,)'``).
DEFAULT_BATCH_SIZE = 4
# DataLoader workers per process are capped here: past it, more processes only cost memory.
MAX_DEFAULT_WORKERS = 16

# What a config.json written before an option existed meant by leaving it out: a resumed old run
# keeps the behaviour it started with.
LEGACY_OPTIONS: dict[str, Any] = {"augment_style": "uniform"}


def default_workers() -> int:
    """DataLoader workers per training process from the free cores: the CPUs this process may
    run on (``os.sched_getaffinity``), shared among the processes of this node (torchrun's
    ``LOCAL_WORLD_SIZE``), less one for the training process itself, at most
    :data:`MAX_DEFAULT_WORKERS`.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    try:
        local_processes = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    except ValueError:
        local_processes = 1
    return max(0, min(cores // local_processes - 1, MAX_DEFAULT_WORKERS))


# Config-file spellings that mean another field.
_ALIASES: dict[str, str] = {"student": "model", "student_init": "init"}

# The TrainConfig field metadata of an option that only ``fpdctl distill`` takes: ``fpdctl
# train`` refuses it from every source (flag, config file, preset).
DISTILL_ONLY: dict[str, bool] = {"distill_only": True}

# The defaults of the recipe, named once: TrainConfig's fields, the help texts and the tests read
# them from here.
DEFAULT_EPOCHS = 140
DEFAULT_LR = 2.5e-4
DEFAULT_OPTIMIZER = "adam"
DEFAULT_SCHEDULE = "step:90,120"
DEFAULT_SIGMA = 2.0
DEFAULT_LOG_EVERY = 50


@dataclass(frozen=True)
class TrainConfig:
    """Every option of ``fpdctl train`` and ``fpdctl distill``, fully resolved.

    The defaults reproduce the official FPD MPII recipe: 256 px input (64 px heatmaps, sigma 2),
    Adam at 2.5e-4, 140 epochs with the learning rate x0.1 at epochs 90 and 120, 4 images per
    step, the official augmentation draws (scale ``clip(N(1, 0.25), 0.75, 1.25)``, rotation
    ``clip(N(0, 30), -60, 60)`` with probability 0.6, flip 0.5, no colour jitter), flip-test
    evaluation.

    ``batch_size`` is per process: under ``torchrun --nproc_per_node N`` every process takes
    ``batch_size`` images per step, so the global batch is ``batch_size x N`` (the official
    runs: 4 x 1). Give ``--batch-size 1`` with 4 processes to keep the official global batch.

    Attributes:
        command: "train" (ground truth only) or "distill" (FPD with a teacher).
        model: the model (student) to train, a registered name such as ``hg4x128``.
        teacher: teacher checkpoint (distill only), any format ``create_model`` reads.
        teacher_input_convention, teacher_input_order, teacher_input_mean, teacher_input_std:
            override flags for the teacher's input convention (``--teacher-input-*``, as typed;
            None: what the checkpoint records or its format implies), see
            :func:`teacher_input_override`. The student trains in NATIVE.
        alpha: weight of the distillation term, in [0, 1].
        mask_teacher: mask the distillation term with the target weights (official code).
        kd_loss: the distillation term, "mse" (the paper's) or "kl" (soft-maxed heatmaps).
        kd_temperature: the "kl" term's softmax temperature.
        alpha_schedule: "constant", or "linear" (alpha decays to 0 over the run).
        unlabeled: images without labels mixed into each batch (distill only): a folder of
            person crops or ``synthetic[:length=N]``, see :mod:`fpdctl.data.unlabeled`.
        unlabeled_ratio: the fraction of each batch that is unlabeled.
        init: optional checkpoint to initialise the trained model from.
        data: ``synthetic[:K=V,...]``, ``mpii:PATH`` or ``lsp:PATH``.
        input_size: network input side in px (heatmaps are a quarter of it).
        sigma: Gaussian sigma of the targets, heatmap px.
        augment: training augmentation on.
        augment_style: "official" (the official code's draws, see
            :class:`~fpdctl.data.transforms.AugmentConfig`) or "uniform" (uniform draws plus
            colour jitter, fpdctl's earlier recipe).
        epochs: length of the run in epochs, unless ``max_steps`` is set.
        max_steps: length of the run in optimizer steps (wins over ``epochs``).
        batch_size: images per step per process (global batch = this x the world size).
        lr: base learning rate.
        optimizer: "adam", "rmsprop" or "sgd".
        momentum: momentum for sgd and rmsprop.
        weight_decay: L2 weight decay.
        schedule: "step:E1,E2,..." (x ``lr_factor`` at those epochs), "cosine" or "constant".
        lr_factor: the step schedule's multiplier.
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        precision: "auto" (CUDA: bf16 on GPUs with native bf16, compute capability 8.0+,
            else fp16; CPU: bf16 with native bf16 instructions, else fp32), "bf16", "fp16" or
            "fp32".
        workers: DataLoader worker processes per training process (default: the free cores,
            see :func:`default_workers`).
        deterministic: deterministic algorithms (``torch.use_deterministic_algorithms``,
            cuDNN deterministic, no cuDNN benchmark), so CUDA runs resume bit for bit.
        seed: seeds weights, data order and augmentation.
        eval_every: validate every this many steps; None once per epoch; 0 only at the end.
        log_every: write a metrics row every this many steps.
        save_every: write last.safetensors + state.pt every this many steps; None at each
            validation, or once per epoch when validation is off (and always at the end and on
            interruption); 0 only at the end and on interruption.
        val_limit: validate on the first this many validation persons only (None: all).
        flip_test: average with the horizontally flipped input when evaluating.
        eval_batch_size: images per evaluation batch.
        compile: wrap the model in ``torch.compile``.
        channels_last: use the channels-last memory format.
        tensorboard: also write TensorBoard event files into the run directory (needs the
            ``tensorboard`` package, ``pip install 'fpdctl[tensorboard]'``).
        preset: the preset these options started from, if any.
        out: the run directory.
    """

    command: str = "train"
    model: str = TEACHER_MODEL
    teacher: str | None = field(default=None, metadata=DISTILL_ONLY)
    teacher_input_convention: str | None = field(default=None, metadata=DISTILL_ONLY)
    teacher_input_order: str | None = field(default=None, metadata=DISTILL_ONLY)
    teacher_input_mean: str | None = field(default=None, metadata=DISTILL_ONLY)
    teacher_input_std: str | None = field(default=None, metadata=DISTILL_ONLY)
    alpha: float = field(default=DEFAULT_ALPHA, metadata=DISTILL_ONLY)
    mask_teacher: bool = field(default=True, metadata=DISTILL_ONLY)
    kd_loss: str = field(default=DEFAULT_KD_LOSS, metadata=DISTILL_ONLY)
    kd_temperature: float = field(default=DEFAULT_KD_TEMPERATURE, metadata=DISTILL_ONLY)
    alpha_schedule: str = field(default=DEFAULT_ALPHA_SCHEDULE, metadata=DISTILL_ONLY)
    unlabeled: str | None = field(default=None, metadata=DISTILL_ONLY)
    unlabeled_ratio: float = field(default=DEFAULT_UNLABELED_RATIO, metadata=DISTILL_ONLY)
    init: str | None = None
    data: str = "synthetic"
    input_size: int = DEFAULT_INPUT_SIZE
    sigma: float = DEFAULT_SIGMA
    augment: bool = True
    augment_style: str = DEFAULT_AUGMENT_STYLE
    epochs: int = DEFAULT_EPOCHS
    max_steps: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    optimizer: str = DEFAULT_OPTIMIZER
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = DEFAULT_SCHEDULE
    lr_factor: float = 0.1
    device: str = "auto"
    precision: str = "auto"
    workers: int = field(default_factory=default_workers)
    seed: int = 0
    eval_every: int | None = None
    log_every: int = DEFAULT_LOG_EVERY
    save_every: int | None = None
    val_limit: int | None = None
    flip_test: bool = True
    eval_batch_size: int = 32
    compile: bool = False
    channels_last: bool = True
    deterministic: bool = False
    tensorboard: bool = False
    preset: str | None = None
    out: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        new = dataclasses.replace(self, **changes)
        if "data" not in changes and "data_spec" in self.__dict__:  # the same data: not parsed again
            new.__dict__["data_spec"] = self.__dict__["data_spec"]
        return new

    @functools.cached_property
    def data_spec(self) -> DataSpec:
        """``data`` parsed, once per config (its PATH checked then): what the trainer and the
        sweep build their datasets from."""
        return parse_data_spec(self.data)

    @property
    def distill(self) -> bool:
        return self.command == "distill"

    @property
    def kd(self) -> KdSettings:
        """The distillation half of the loss (checked when the config is validated)."""
        return KdSettings(
            alpha=self.alpha,
            alpha_schedule=self.alpha_schedule,
            kd_loss=self.kd_loss,
            temperature=self.kd_temperature,
            mask_teacher=self.mask_teacher,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "options") -> TrainConfig:
        """Build and validate a config from a mapping of field values (e.g. config.json).

        Options the mapping leaves out that are in :data:`LEGACY_OPTIONS` take their legacy
        value (what a run of an fpdctl before the option did), not today's default.
        """
        values = {**LEGACY_OPTIONS, **coerce_options(data, source=source)}
        config = cls(**values)
        validate_config(config)
        return config


# Presets are bundles of defaults; the config file and flags still override them.
PRESETS: dict[str, dict[str, Any]] = {
    # The synthetic demo: small input, a few hundred steps, a small validation set, cosine decay
    # from a higher rate so a short run gets somewhere. Minutes on a laptop CPU for hg2x64.
    "quick": {
        "input_size": 128,
        "max_steps": 300,
        "batch_size": 16,
        "lr": 1e-3,
        "schedule": "cosine",
        "eval_every": 100,
        "log_every": 10,
        "val_limit": 128,
        "eval_batch_size": 32,
    },
}

# Default model per command when nothing sets it.
DEFAULT_MODEL: dict[str, str] = {"train": TEACHER_MODEL, "distill": STUDENT_MODEL}

_FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}
# Options only ``fpdctl distill`` takes (their fields carry DISTILL_ONLY).
DISTILL_OPTIONS: tuple[str, ...] = tuple(f.name for f in _FIELDS.values() if f.metadata.get("distill_only"))
# The teacher's input-convention override (distill; prune-sweep's fine-tunes), as typed.
TEACHER_INPUT_FIELDS: tuple[str, ...] = (
    "teacher_input_convention",
    "teacher_input_order",
    "teacher_input_mean",
    "teacher_input_std",
)


def _field_types() -> dict[str, tuple[type, bool]]:
    """Each option's value type and whether it may be None, from TrainConfig's annotations."""
    table: dict[str, tuple[type, bool]] = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        if name not in _FIELDS:
            continue
        args = typing.get_args(hint)
        optional = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        base = next(a for a in args if a is not type(None)) if optional else hint
        if base not in (int, float, bool, str):  # _coerce knows these four
            raise TypeError(f"TrainConfig.{name}: options are int, float, bool or str, got {hint}")
        table[name] = (base, optional and type(None) in args)
    return table


_TYPES: dict[str, tuple[type, bool]] = _field_types()


def _coerce(name: str, value: Any, source: str) -> Any:
    def bad(kind: str) -> UsageError:
        return UsageError(f"`{name}` must be {kind}, got {value!r} (in {source})", params=name)

    kind, optional = _TYPES[name]
    if value is None:
        if optional:
            return None
        raise bad("set")
    if kind is int:
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise bad("an integer")
    if kind is float:
        if isinstance(value, bool):
            raise bad("a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad("a number") from None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.strip().lower() in ("true", "yes", "on", "1")
        raise bad("true or false")
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise bad("a string")


# The options whose value is one of a few names.
_CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": OPTIMIZERS,
    "precision": TRAIN_PRECISIONS,
    "augment_style": AUGMENT_STYLES,
    "kd_loss": KD_LOSSES,
}


def coerce_options(data: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """Normalise option names (dashes or underscores, aliases) and convert the values.

    Raises:
        UsageError: an unknown option name (named) or a value of the wrong type.
    """
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key).strip().replace("-", "_")
        key = _ALIASES.get(key, key)
        if key not in _FIELDS:
            raise UsageError(
                f"unknown option '{raw_key}' in {source}; valid options: "
                f"{', '.join(sorted(k for k in _FIELDS if k != 'command'))}"
            )
        out[key] = _coerce(key, value, source)
        if key in _CHOICES:  # any case, as every choice option (validate_config names the choices)
            out[key] = match_choice(out[key], _CHOICES[key]) or out[key] if out[key] is not None else None
    return out


def teacher_input_override(config: TrainConfig) -> ConventionOverride | None:
    """The ``--teacher-input-*`` flags of ``config`` as an override (None when none is given).

    Raises:
        UsageError: a bad value, naming its flag.
    """
    override = ConventionOverride(
        config.teacher_input_convention,
        config.teacher_input_order,
        config.teacher_input_mean,
        config.teacher_input_std,
        param_prefix="teacher_input",
    )
    return override.check() if override.given else None


def validate_config(config: TrainConfig) -> None:
    """Check every option on its own and in combination.

    Raises:
        UsageError: the first problem, in one line.
    """
    if config.command not in COMMANDS:
        raise UsageError(f"command must be train or distill, got {config.command!r}")
    _ = config.kd  # alpha, the kd loss, its temperature and the alpha schedule, checked once here
    if config.tensorboard:
        check_tensorboard()
    if config.command == "distill" and not config.teacher:
        raise UsageError("distill needs `teacher` CKPT", params="teacher")
    teacher_input_override(config)
    if config.teacher == GROUND_TRUTH_TEACHER:
        if config.unlabeled is not None:
            raise UsageError(
                "`unlabeled` needs a teacher network; `teacher` ground-truth has no maps for unlabeled images",
                params=("unlabeled", "teacher"),
            )
        given = [name for name in TEACHER_INPUT_FIELDS if getattr(config, name) is not None]
        if given:
            raise UsageError(
                f"`{given[0]}` needs a teacher network, not `teacher` ground-truth", params=(given[0], "teacher")
            )
    if not math.isfinite(config.lr):
        raise UsageError(f"lr must be a finite number, got {config.lr:g}")
    if not config.lr > 0:
        raise UsageError(f"lr must be positive, got {config.lr:g}")
    if config.batch_size <= 0:
        raise UsageError(f"batch size must be positive, got {config.batch_size}")
    if config.eval_batch_size <= 0:
        raise UsageError(f"eval batch size must be positive, got {config.eval_batch_size}")
    if config.max_steps is not None and config.max_steps <= 0:
        raise UsageError(f"max steps must be positive, got {config.max_steps}")
    if config.epochs <= 0:
        raise UsageError(f"epochs must be positive, got {config.epochs}")
    if config.optimizer not in OPTIMIZERS:
        raise UsageError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got '{config.optimizer}'")
    if config.precision not in TRAIN_PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(TRAIN_PRECISIONS)}, got '{config.precision}'")
    if config.augment_style not in AUGMENT_STYLES:
        raise UsageError(f"augment style must be one of {', '.join(AUGMENT_STYLES)}, got '{config.augment_style}'")
    for name in ("momentum", "weight_decay"):
        value = getattr(config, name)
        if not (value >= 0 and math.isfinite(value)):  # also rejects NaN
            raise UsageError(f"{name.replace('_', ' ')} must be a finite number >= 0, got {value:g}")
    if not 0 < config.lr_factor <= 1:
        raise UsageError(f"lr factor must be in (0, 1], got {config.lr_factor:g}")
    if not math.isfinite(config.sigma):
        raise UsageError(f"sigma must be a finite number, got {config.sigma:g}")
    if not config.sigma > 0:
        raise UsageError(f"sigma must be positive, got {config.sigma:g}")
    if config.seed < 0:
        raise UsageError(f"seed must be >= 0, got {config.seed}")
    if config.seed > MAX_SEED:  # the trainer derives 64-bit generator seeds from it
        raise UsageError(f"seed must be at most {MAX_SEED} (2**32 - 1), got {config.seed}")
    if config.workers < 0:
        raise UsageError(f"workers must be >= 0, got {config.workers}")
    if config.log_every <= 0:
        raise UsageError(f"log every must be positive, got {config.log_every}")
    for name in ("eval_every", "save_every"):
        value = getattr(config, name)
        if value is not None and value < 0:
            raise UsageError(f"{name.replace('_', ' ')} must be >= 0, got {value}")
    if config.val_limit is not None and config.val_limit <= 0:
        raise UsageError(f"val limit must be positive, got {config.val_limit}")
    if config.unlabeled is not None:
        check_unlabeled(config.unlabeled, config.unlabeled_ratio, config.batch_size)
    parse_schedule(config.schedule)
    spec = resolve_spec(config.model)
    spec.check_input_size(config.input_size)
    if config.preset is not None and config.preset not in PRESETS:
        raise UsageError(f"unknown preset '{config.preset}'; available: {', '.join(sorted(PRESETS))}")


# What ``--tensorboard`` needs, and how to get it.
TENSORBOARD_EXTRA = "pip install 'fpdctl[tensorboard]'"


def check_tensorboard() -> None:
    """Raise UsageError naming the extra unless the ``tensorboard`` package is installed."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise UsageError(f"`tensorboard` needs the tensorboard package: {TENSORBOARD_EXTRA}", params="tensorboard")


__all__ = [
    "COMMANDS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "DEFAULT_LOG_EVERY",
    "DEFAULT_LR",
    "DEFAULT_OPTIMIZER",
    "DEFAULT_SCHEDULE",
    "DEFAULT_SIGMA",
    "DISTILL_OPTIONS",
    "LEGACY_OPTIONS",
    "OPTIMIZERS",
    "PRESETS",
    "RESUMABLE_CHANGES",
    "TRAIN_PRECISIONS",
    "TENSORBOARD_EXTRA",
    "TrainConfig",
    "check_tensorboard",
    "coerce_options",
    "default_workers",
    "teacher_input_override",
    "validate_config",
]
