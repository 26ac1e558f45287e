import pytest
import torch

from fpdctl import HourglassSpec, create_model
from fpdctl.models.hourglass import count_parameters
from tests.models.reference_hourglass import RefHourglassNet


@pytest.mark.parametrize(
    "name, params",
    [
        # Figures of the reference implementations (pytorch-pose / official FPD code).
        ("hg8x256", 25_594_624),
        ("hg4x128", 3_287_936),
        ("hg2x256", 6_730_912),
        # yuanyuanli85/Fast_Human_Pose_Estimation_Pytorch's hg_s2_b1_mobile ("2.31m").
        ("hg2x256m", 2_305_504),
    ],
)
def test_exact_parameter_counts(name, params):
    with torch.device("meta"):
        model = create_model(name)
    assert count_parameters(model) == params


@pytest.mark.parametrize("stacks, blocks, feats", [(1, 1, 8), (2, 1, 16), (2, 2, 8), (3, 1, 32)])
def test_parameter_counts_match_reference_construction(stacks, blocks, feats):
    with torch.device("meta"):
        ours = create_model(HourglassSpec(stacks, 2 * feats, blocks))
        ref = RefHourglassNet(num_stacks=stacks, num_blocks=blocks, num_feats=feats)
    assert count_parameters(ours) == count_parameters(ref)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in ref.state_dict().items()
    }


def test_forward_shape_all_stacks():
    model = create_model("hg2x16").eval()
    with torch.inference_mode():
        out = model(torch.randn(3, 3, 128, 64))
    assert out.shape == (3, 2, 16, 32, 16)


def test_outputs_equal_reference_network():
    torch.manual_seed(0)
    ref = RefHourglassNet(num_stacks=2, num_blocks=1, num_feats=8).eval()
    for module in ref.modules():  # non-trivial BN statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    ours = create_model("hg2x16").eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        expected = torch.stack(ref(x), dim=1)
        got = ours(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
