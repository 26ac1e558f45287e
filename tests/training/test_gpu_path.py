"""The GPU path, tested where a CPU can: precision choice, one synchronisation per step,
persistent workers, validation under autocast, world-size checks and --deterministic.

Decisions that depend on a GPU are tested by replacing the ``torch.cuda`` functions they ask
(``get_device_capability``, ``set_device``) with recorders.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import fpdctl.training.config as config_module
from fpdctl.errors import UsageError
from fpdctl.models.checkpoint import read_checkpoint, save_model
from fpdctl.training.config import default_workers
from fpdctl.training.distributed import DistInfo, ResumableSampler
from fpdctl.training.loop import TrainLoop
from fpdctl.training.precision import arithmetic_mode, resolve_precision
from fpdctl.training.run_dir import load_run_config
from fpdctl.training.sources import resolve_config
from fpdctl.training.state import load_state
from fpdctl.training.trainer import Trainer
from tests.conftest import make_net

TINY: dict[str, Any] = {
    "model": "hg1x16",
    "input_size": 64,
    "batch_size": 4,
    "workers": 0,
    "val_limit": 8,
    "eval_batch_size": 8,
    "precision": "fp32",
    "log_every": 1,
    "data": "synthetic:length=16",
}


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(make_net("hg1x16", seed=3), tmp_path_factory.mktemp("t") / "teacher.safetensors")


class _CudaRecorder:
    """Stands in for the torch.cuda calls the precision choice makes, recording their order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int]) -> None:
        self.calls: list[str] = []
        self.capability = capability
        monkeypatch.setattr(torch.cuda, "get_device_capability", self._capability)
        monkeypatch.setattr(torch.cuda, "set_device", lambda d: self.calls.append(f"set_device {d}"))

        def emulated(*_a: Any, **_k: Any) -> bool:
            raise AssertionError("is_bf16_supported() counts emulated bf16: never ask it")

        monkeypatch.setattr(torch.cuda, "is_bf16_supported", emulated)

    def _capability(self, device: Any = None) -> tuple[int, int]:
        self.calls.append(f"capability {device}")
        return self.capability


# ----------------------------------------------------------------------------- precision
@pytest.mark.parametrize(
    ("capability", "auto"), [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")]
)
def test_auto_precision_is_bf16_only_with_native_bf16(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], auto: str
) -> None:
    cuda = _CudaRecorder(monkeypatch, capability)
    device = torch.device("cuda", 1)
    chosen = resolve_precision("auto", device)
    assert chosen.name == auto and chosen.scaler == (auto == "fp16")
    assert cuda.calls == ["capability cuda:1"]  # the device itself, never cuda:0
    assert resolve_precision("fp16", device).dtype == torch.float16
    assert resolve_precision("fp32", device).dtype is None


def test_bf16_on_a_gpu_without_native_bf16_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _CudaRecorder(monkeypatch, (7, 0))
    with pytest.raises(UsageError) as info:
        resolve_precision("bf16", torch.device("cuda", 0))
    assert str(info.value) == (
        "`precision` bf16: this GPU (compute capability 7.0) has no native bf16, which needs 8.0 "
        "or higher; use fp16 (or auto) or fp32"
    )


def test_precision_is_chosen_after_set_device(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Construction asks nothing of a GPU; run() sets the device, then asks its capability."""
    cuda = _CudaRecorder(monkeypatch, (7, 5))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    cfg = resolve_config(
        "train", {**TINY, "device": "cuda", "precision": "auto", "max_steps": 1, "out": str(tmp_path / "run")}
    )
    trainer = Trainer(cfg, dist_info=DistInfo(rank=1, world_size=2, local_rank=1))
    assert trainer.device == torch.device("cuda", 1) and trainer.precision is None
    assert cuda.calls == []
    trainer._select_device()
    assert cuda.calls == ["set_device cuda:1", "capability cuda:1"]
    assert trainer.precision is not None and trainer.precision.name == "fp16"


def test_arithmetic_mode_sets_and_restores() -> None:
    cudnn = torch.backends.cudnn
    before = (
        cudnn.benchmark,
        cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    with arithmetic_mode(False):
        assert cudnn.benchmark and not cudnn.deterministic  # fixed input sizes: benchmark once
        assert not torch.are_deterministic_algorithms_enabled()
    with arithmetic_mode(True):
        assert not cudnn.benchmark and cudnn.deterministic
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] in (":4096:8", before[3])
    after = (
        cudnn.benchmark,
        cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    assert after == before


# ----------------------------------------------------------------------------- synchronisations
# Tensor methods that read a value back to the host: on a GPU each waits for the device.
_SYNCS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__")


class _SyncCounter:
    """Counts host reads of tensors while active, made from fpdctl's code or from anywhere."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, only_fpdctl: bool) -> None:
        self.active = False
        self.calls: list[str] = []
        for name in _SYNCS:
            original = getattr(torch.Tensor, name)

            def wrapper(
                tensor: torch.Tensor, *args: Any, _original: Any = original, _name: str = name, **kwargs: Any
            ) -> Any:
                if self.active:
                    caller = sys._getframe(1).f_globals.get("__name__", "")
                    if not only_fpdctl or caller.startswith("fpdctl"):
                        self.calls.append(f"{_name} in {caller}")
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, wrapper)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_one_host_read_per_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, teacher_ckpt: Path, precision: str
) -> None:
    """A distillation step reads back exactly one tensor: the stacked loss terms and flags."""
    counter = _SyncCounter(monkeypatch, only_fpdctl=True)
    per_step: list[list[str]] = []
    real_step = TrainLoop._step

    def counted(loop: TrainLoop, batch: dict[str, Any]) -> Any:
        counter.calls = []
        counter.active = True
        try:
            return real_step(loop, batch)
        finally:
            counter.active = False
            per_step.append(counter.calls)

    monkeypatch.setattr(TrainLoop, "_step", counted)
    cfg = resolve_config(
        "distill",
        {
            **TINY,
            "teacher": str(teacher_ckpt),
            "precision": precision,
            "max_steps": 3,
            "eval_every": 0,
            "out": str(tmp_path / "run"),
        },
    )
    Trainer(cfg).run()
    assert per_step == [["tolist in fpdctl.training.distributed"]] * 3


@pytest.mark.parametrize(("fused", "reads"), [(True, 0), (False, 1)])
def test_fused_optimizer_lets_the_grad_scaler_step_without_a_host_read(
    monkeypatch: pytest.MonkeyPatch, fused: bool, reads: int
) -> None:
    """fp16: GradScaler reads its inf check back unless the optimizer is fused (the trainer
    asks for fused Adam / SGD on CUDA)."""
    from fpdctl.training.step import apply_gradients, make_optimizer

    cfg = resolve_config("train", {**TINY, "out": "unused"})
    net = torch.nn.Linear(4, 2)
    optimizer = make_optimizer(cfg, net, fused=fused)
    assert optimizer.defaults.get("fused") is (True if fused else None)
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    counter = _SyncCounter(monkeypatch, only_fpdctl=False)
    loss = net(torch.randn(3, 4)).square().mean()
    counter.active = True
    apply_gradients(loss, optimizer, scaler)
    counter.active = False
    # Unfused, Adam also reads its step counters, CPU tensors even on CUDA (no synchronisation).
    assert counter.calls.count("item in torch.amp.grad_scaler") == reads, counter.calls
    if fused:
        assert counter.calls == []


# ----------------------------------------------------------------------------- data loading
def test_default_workers_from_the_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    for cores, workers in ((1, 0), (2, 1), (16, 15), (64, 16)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert default_workers() == workers
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(16)))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four processes on this node share the cores
    assert default_workers() == 3
    assert config_module.TrainConfig().workers == 3
    assert resolve_config("train", {"out": "x"}).workers == 3


def test_persistent_workers_reshuffle_each_epoch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """One DataLoader with one worker for three epochs; its batches are exactly those of a fresh
    loader per epoch: the sampler's permutation of each epoch, each sample augmented for its
    (seed, epoch, index)."""
    from torch.utils.data import dataloader

    started: list[int] = []
    real_init = dataloader._MultiProcessingDataLoaderIter.__init__

    def init(self: Any, loader: Any) -> None:
        started.append(loader.num_workers)
        real_init(self, loader)

    monkeypatch.setattr(dataloader._MultiProcessingDataLoaderIter, "__init__", init)
    seen: list[tuple[list[int], list[float]]] = []
    real_step = TrainLoop._step

    def record(loop: TrainLoop, batch: dict[str, Any]) -> Any:
        seen.append((batch["meta"]["index"].tolist(), batch["meta"]["scale"].tolist()))
        return real_step(loop, batch)

    monkeypatch.setattr(TrainLoop, "_step", record)
    cfg = resolve_config(
        "train",
        {
            **TINY,
            "data": "synthetic:length=8",
            "workers": 1,
            "seed": 5,
            "max_steps": 6,
            "eval_every": 0,
            "out": str(tmp_path / "run"),
        },
    )
    trainer = Trainer(cfg)
    trainer.run()
    assert started == [1, 1]  # training's one loader (all epochs), then the final evaluation's
    expected: list[tuple[list[int], list[float]]] = []
    sampler = ResumableSampler(trainer.train_set, seed=5)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        trainer.train_set.set_epoch(epoch, 5)
        scales = [float(trainer.train_set[i]["meta"]["scale"]) for i in order]
        expected += [(order[:4], scales[:4]), (order[4:], scales[4:])]
    assert [o for o, _ in seen] == [o for o, _ in expected]
    assert [o for o, _ in seen[:2]] != [o for o, _ in seen[2:4]]  # reshuffled
    for (_, got), (_, want) in zip(seen, expected):
        assert got == pytest.approx(want, abs=1e-6)


def test_validation_runs_under_the_runs_autocast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import fpdctl.evaluation as evaluate_module

    modes: list[tuple[bool, torch.dtype]] = []
    real = evaluate_module.evaluate_model

    def spy(*args: Any, **kwargs: Any) -> Any:
        modes.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "evaluate_model", spy)
    cfg = resolve_config(
        "train", {**TINY, "precision": "bf16", "max_steps": 2, "eval_every": 1, "out": str(tmp_path / "run")}
    )
    result = Trainer(cfg).run()
    assert modes == [(True, torch.bfloat16)] * 2  # the step-1 validation and the final one
    assert result.final_eval is not None and 0.0 <= result.final_eval["pckh"]["mean"] <= 100.0


# ----------------------------------------------------------------------------- resume
def test_state_records_the_world_and_resume_on_another_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = resolve_config("train", {**TINY, "max_steps": 2, "eval_every": 0, "out": str(out)})
    Trainer(cfg).run()
    state = load_state(out / "state.pt")
    assert (state.world_size, state.global_batch) == (1, 4)
    with pytest.raises(UsageError) as info:
        Trainer(load_run_config(out), resume=True, dist_info=DistInfo(rank=0, world_size=2, local_rank=0))
    assert str(info.value) == (
        f"cannot resume {out / 'state.pt'}: it was trained with 1 process(es) (global batch 4) and "
        "this run has 2 (global batch 8); resume it with 1 process(es) (torchrun --nproc_per_node 1 "
        "on one node), or start a new run with `out`"
    )


def test_resume_on_another_world_size_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fpdctl.cli.app import main

    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--model",
                "hg1x16",
                "--data",
                "synthetic:length=16",
                "--input-size",
                "64",
                "--batch-size",
                "4",
                "--workers",
                "0",
                "--val-limit",
                "8",
                "--precision",
                "fp32",
                "--max-steps",
                "2",
                "--eval-every",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["train", "--resume", str(out), "--max-steps", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"error: cannot resume {out / 'state.pt'}: it was trained with 1 process(es)"
    )
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing touched


def test_deterministic_run_is_bit_identical_on_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--deterministic is on for the run (and restored after); on a CPU it changes no result."""
    flags: list[bool] = []
    real_step = TrainLoop._step

    def record(loop: TrainLoop, batch: dict[str, Any]) -> Any:
        flags.append(torch.are_deterministic_algorithms_enabled())
        return real_step(loop, batch)

    monkeypatch.setattr(TrainLoop, "_step", record)
    weights = []
    for deterministic in (True, False):
        out = tmp_path / f"run-{deterministic}"
        cfg = resolve_config(
            "train", {**TINY, "max_steps": 3, "eval_every": 0, "deterministic": deterministic, "out": str(out)}
        )
        Trainer(cfg).run()
        weights.append(read_checkpoint(out / "last.safetensors")[0])
        assert load_run_config(out).deterministic is deterministic
    assert flags == [True] * 3 + [False] * 3
    assert not torch.are_deterministic_algorithms_enabled()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
