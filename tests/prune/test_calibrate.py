"""BN re-estimation after slicing: the statistics are the sliced network's own, weights untouched."""

from __future__ import annotations

import pytest
import torch

from fpdctl.errors import UsageError
from fpdctl.models.factory import create_model
from fpdctl.models.spec import HourglassSpec
from fpdctl.prune.calibrate import recalibrate_bn


class _Images(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index]}


def test_statistics_are_the_average_over_the_batches_seen() -> None:
    torch.manual_seed(0)
    model = create_model(HourglassSpec(1, 8, depth=2))
    model.bn1.momentum = 0.3
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "batches" not in k}
    images = torch.randn(6, 3, 32, 32) * 2.0 + 0.5
    seen = recalibrate_bn(model, _Images(images), batches=3, batch_size=2, seed=4)
    assert seen == 6 and not model.training and model.bn1.momentum == 0.3
    for key, value in weights.items():
        assert torch.equal(model.state_dict()[key], value), key
    # Independently: bn1 normalises conv1's output. With equal batches the average of the batch
    # means is the mean over all images, whatever the shuffle.
    with torch.no_grad():
        features = model.conv1(images)
    torch.testing.assert_close(model.bn1.running_mean, features.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    # One batch of everything: the running variance is that batch's unbiased variance.
    recalibrate_bn(model, _Images(images), batches=5, batch_size=6)
    torch.testing.assert_close(model.bn1.running_var, features.var(dim=(0, 2, 3), unbiased=True), rtol=1e-5, atol=1e-6)
    # Deeper BNs see the sliced network's own activations: the first bottleneck's bn1 reads
    # relu(bn1(conv1 x)), normalised with the batch's own (biased) statistics during the pass.
    bn = model.bn1
    mean = features.mean(dim=(0, 2, 3), keepdim=True)
    var = features.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    with torch.no_grad():
        stem = torch.relu(
            (features - mean) / torch.sqrt(var + bn.eps) * bn.weight[:, None, None] + bn.bias[:, None, None]
        )
    torch.testing.assert_close(model.layer1[0].bn1.running_mean, stem.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)


def test_zero_batches_is_refused() -> None:
    with pytest.raises(UsageError, match=r"^`recalibrate_bn` must be at least 1 batch, got 0$"):
        recalibrate_bn(create_model(HourglassSpec(1, 8, depth=2)), _Images(torch.zeros(2, 3, 32, 32)), batches=0)


def test_images_are_fed_in_the_networks_own_convention() -> None:
    """A network sliced from an official-FPD teacher keeps BGR inputs: the dataset's NATIVE images
    are converted first, so its statistics are those of BGR inputs (a NATIVE twin fed the
    converted images directly gets the same ones)."""
    from fpdctl.models.convention import FPD_OFFICIAL, NATIVE, convert_array

    torch.manual_seed(0)
    model = create_model(HourglassSpec(1, 8, depth=2))
    twin = create_model(HourglassSpec(1, 8, depth=2))
    twin.load_state_dict(model.state_dict())
    model.input_convention = FPD_OFFICIAL
    images = torch.randn(4, 3, 32, 32)
    images[:, 0] += 1.0  # red and blue differ, so feeding them swapped would show
    recalibrate_bn(model, _Images(images), batches=2, batch_size=2, seed=1)
    converted = torch.from_numpy(convert_array(images.numpy(), NATIVE, FPD_OFFICIAL))
    recalibrate_bn(twin, _Images(converted), batches=2, batch_size=2, seed=1)
    torch.testing.assert_close(model.bn1.running_mean, twin.bn1.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.bn1.running_var, twin.bn1.running_var, rtol=1e-5, atol=1e-6)
    plain = create_model(HourglassSpec(1, 8, depth=2))
    plain.load_state_dict(model.state_dict())
    recalibrate_bn(plain, _Images(images), batches=2, batch_size=2, seed=1)  # NATIVE: unconverted
    assert not torch.allclose(plain.bn1.running_mean, model.bn1.running_mean, atol=1e-3)
