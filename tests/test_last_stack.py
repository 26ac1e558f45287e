"""One name for the last stack: fpdctl.pipeline.last_stack, used by training, eval and export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fpdctl.errors import UsageError
from fpdctl.pipeline import last_stack


def test_last_stack_of_every_layout() -> None:
    stacks = np.arange(2 * 3 * 4 * 2 * 2, dtype=np.float32).reshape(2, 3, 4, 2, 2)
    np.testing.assert_array_equal(last_stack(stacks), stacks[:, 2])
    tensor = torch.from_numpy(stacks)
    assert torch.equal(last_stack(tensor), tensor[:, 2])
    already_last = stacks[:, 1]
    assert last_stack(already_last) is already_last  # [N, J, h, w] passes through
    np.testing.assert_array_equal(last_stack([stacks[:, 0], stacks[:, 1]]), stacks[:, 1])
    with pytest.raises(UsageError, match=r"shape \(2, 3\); expected \[N, S, J, h, w\]"):
        last_stack(np.zeros((2, 3)))


def test_the_old_names_are_the_one_function() -> None:
    from fpdctl.deploy.torch_onnx import final_stack_module, last_stack_module
    from fpdctl.training.loss import final_stack

    assert final_stack is last_stack
    assert final_stack_module is last_stack_module
    net = torch.nn.Conv3d(1, 1, 1)  # any module returning [N, S, J, h, w]: here S = 3 "stacks"
    images = torch.randn(2, 1, 3, 4, 4)
    with torch.no_grad():
        assert torch.equal(last_stack_module(net)(images), net(images)[:, -1])
