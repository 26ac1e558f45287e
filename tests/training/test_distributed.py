"""Two processes under torchrun on CPU (gloo), checked against a step-by-step emulation."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch

from fpdctl.data.registry import build_dataset
from fpdctl.data.transforms import AugmentConfig
from fpdctl.models.checkpoint import read_checkpoint
from fpdctl.models.factory import create_model
from fpdctl.training.distributed import ResumableSampler, StepTotals, reduce_step
from fpdctl.training.loss import fpd_loss

SEED, STEPS, BATCH, ALPHA = 3, 3, 2, 0.5


def _emulate_two_ranks(teacher_path: Path) -> dict[str, torch.Tensor]:
    """What DistributedDataParallel on 2 ranks should compute, written out by hand.

    Rank r takes items r, r+2, ... of the epoch's permutation (seeded by seed + epoch, the
    DistributedSampler rule); each rank's BatchNorm normalises its own batch; DDP broadcasts rank
    0's buffers before each forward and averages the gradients; Adam then steps once.
    """
    dataset = build_dataset("synthetic", "train", input_size=64, sigma=2.0, augment=AugmentConfig())
    dataset.set_epoch(0, SEED)
    generator = torch.Generator()
    generator.manual_seed(SEED + 0)
    order = torch.randperm(len(dataset), generator=generator).tolist()
    shards = [order[r : (len(order) // 2) * 2 : 2] for r in (0, 1)]

    teacher = create_model(teacher_path)
    torch.manual_seed(SEED)
    rank0 = create_model("hg1x16").train()
    rank1 = copy.deepcopy(rank0)
    optimizer = torch.optim.Adam(rank0.parameters(), lr=2.5e-4)
    for step in range(STEPS):
        rank1.load_state_dict(rank0.state_dict())  # DDP's buffer broadcast (and equal weights)
        grads = []
        for rank, model in ((0, rank0), (1, rank1)):
            items = [dataset[i] for i in shards[rank][step * BATCH : (step + 1) * BATCH]]
            images = torch.stack([s["image"] for s in items])
            target = torch.stack([s["target"] for s in items])
            weight = torch.stack([s["target_weight"] for s in items])
            with torch.no_grad():
                teacher_maps = teacher(images)[:, -1]
            loss = fpd_loss(model(images), target, weight, teacher_maps, alpha=ALPHA).total
            grads.append(torch.autograd.grad(loss, list(model.parameters())))
        for param, g0, g1 in zip(rank0.parameters(), *grads):
            param.grad = (g0 + g1) / 2
        optimizer.step()
    return rank0.state_dict()


def test_torchrun_two_processes_gloo(tmp_path: Path, tiny_checkpoint: Path) -> None:
    teacher_path = tiny_checkpoint
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "fpdctl",
        "distill",
        "--teacher",
        str(teacher_path),
        "--student",
        "hg1x16",
        "--alpha",
        str(ALPHA),
        "--input-size",
        "64",
        "--batch-size",
        str(BATCH),
        "--max-steps",
        str(STEPS),
        "--workers",
        "0",
        "--precision",
        "fp32",
        "--no-channels-last",
        "--seed",
        str(SEED),
        "--val-limit",
        "4",
        "--eval-every",
        "0",
        "--log-every",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    # Only rank 0 prints and writes.
    assert done.stdout.count("2 process(es)") == 1
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["world_size"] == 2 and config["resolved"]["batch_size_total"] == 2 * BATCH
    assert config["resolved"]["steps_per_epoch"] == 20000 // 2 // BATCH
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + STEPS

    trained = read_checkpoint(out / "last.safetensors")[0]
    expected = _emulate_two_ranks(teacher_path)
    assert trained.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(trained[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_sampler_shards_are_disjoint_and_resumable() -> None:
    data = list(range(103))
    ranks = [ResumableSampler(data, num_replicas=2, rank=r, seed=4) for r in (0, 1)]
    for sampler in ranks:
        sampler.set_epoch(2)
    shards = [list(s) for s in ranks]
    assert len(shards[0]) == len(shards[1]) == 51  # drop_last: no padding duplicates
    assert not set(shards[0]) & set(shards[1])
    ranks[1].set_epoch(2, skip=10)
    assert list(ranks[1]) == shards[1][10:] and len(ranks[1]) == 41
    ranks[1].set_epoch(3)
    assert list(ranks[1]) != shards[1]


def test_one_process_step_totals_are_its_own_figures() -> None:
    loss, gt, kd = torch.tensor(0.3), torch.tensor(0.2), torch.tensor(0.4)
    assert reduce_step(loss, gt, kd, stop=False) == StepTotals(
        float(loss), float(gt), float(kd), non_finite=0, stop_requests=0
    )
    assert reduce_step(gt, gt, None, stop=True) == StepTotals(float(gt), float(gt), 0.0, non_finite=0, stop_requests=1)
    assert reduce_step(torch.tensor(math.inf), gt, kd, stop=False).non_finite == 1
    assert reduce_step(torch.tensor(math.nan), gt, kd, stop=False).non_finite == 1
