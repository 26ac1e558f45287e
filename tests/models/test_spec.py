import pytest

from fpdctl import HourglassSpec, list_models
from fpdctl.errors import UsageError
from fpdctl.models.spec import resolve_spec


@pytest.mark.parametrize(
    "name, spec",
    [
        ("hg8x256", HourglassSpec(8, 256)),
        ("hg4x128", HourglassSpec(4, 128)),
        ("hg2x64b2", HourglassSpec(2, 64, blocks=2)),
        ("hg1x16j14", HourglassSpec(1, 16, joints=14)),
        ("hg3x32d3", HourglassSpec(3, 32, depth=3)),
    ],
)
def test_names_round_trip(name, spec):
    assert HourglassSpec.from_name(name) == spec
    assert spec.name == name
    assert HourglassSpec.from_json(spec.to_json()) == spec


def test_registry_is_the_paper_grid():
    names = list_models()
    assert names[0] == "hg1x64" and names[-1] == "hg8x256"
    assert len(names) == 12 and "hg4x128" in names


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stacks": 0, "channels": 64}, "stacks must be at least 1, got 0"),
        ({"stacks": 2, "channels": 66}, "channels must be a positive multiple of 4, got 66"),
        ({"stacks": 2, "channels": 64, "blocks": 0}, "blocks must be at least 1, got 0"),
    ],
)
def test_invalid_specs(kwargs, message):
    with pytest.raises(UsageError, match=message):
        HourglassSpec(**kwargs)


def test_unknown_name():
    with pytest.raises(UsageError, match="unknown model name 'resnet50'"):
        resolve_spec("resnet50")


@pytest.mark.parametrize("size, ok", [(256, True), (64, True), (128, True), (100, False), (0, False)])
def test_input_size_multiple_of_64(size, ok):
    spec = HourglassSpec(1, 16)
    if ok:
        spec.check_input_size(size)
    else:
        with pytest.raises(UsageError, match=f"multiple of 64 .* got {size}"):
            spec.check_input_size(size)


def test_reference_defaults_are_defined_once_and_consistent():
    from fpdctl.codec import HEATMAP_STRIDE, heatmap_size
    from fpdctl.models.spec import DEFAULT_INPUT_SIZE, STUDENT_MODEL, TEACHER_MODEL, resolve_spec

    assert resolve_spec(TEACHER_MODEL) == HourglassSpec(8, 256)
    assert resolve_spec(STUDENT_MODEL) == HourglassSpec(4, 128)
    assert HourglassSpec(1, 16).input_multiple == HEATMAP_STRIDE * 16 == 64
    HourglassSpec(1, 16).check_input_size(DEFAULT_INPUT_SIZE)
    assert heatmap_size(DEFAULT_INPUT_SIZE) == 64
