"""Pretrained weights by name (fpdctl.pretrained + models.checkpoint), on a registry in tmp_path.

The registry folder is moved with FPDCTL_PRETRAINED_DIR and a test name is added to the registry,
so these tests hold whether or not the shipped weights are installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fpdctl.errors import CheckpointError, UsageError
from fpdctl.models.checkpoint import read_checkpoint, save_model
from fpdctl.models.checkpoint_files import checkpoint_file, file_sha256, resolve_input_size
from fpdctl.models.factory import create_model
from fpdctl.pretrained import (
    CARD_FIELDS,
    PRETRAINED,
    PRETRAINED_DIR_ENV,
    describe_pretrained,
    is_pretrained_name,
    pretrained_card,
    pretrained_dir,
)
from tests.conftest import make_net

NAME = "test-hg1x16"


def write_entry(folder: Path, name: str = NAME, **card_changes: object) -> Path:
    """A registry entry in ``folder``: an hg1x16 checkpoint and its card (input 64 px)."""
    weights = save_model(make_net("hg1x16", seed=4), folder / f"{name}.safetensors")
    card = {
        "name": name,
        "model": "hg1x16",
        "input_size": 64,
        "command": "fpdctl train ...",
        "steps": 10,
        "seed": 0,
        "data": "synthetic",
        "metric": "pckh",
        "val_persons": 500,
        "pckh": 12.5,
        "pckh_subset": {"persons": 8, "value": 10.0},
        "sha256": file_sha256(weights),
        "date": "2025-01-01",
        "machine": "test",
    }
    card.update(card_changes)
    (folder / f"{name}.json").write_text(json.dumps(card))
    return weights


@pytest.fixture()
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "pretrained"
    folder.mkdir()
    monkeypatch.setenv(PRETRAINED_DIR_ENV, str(folder))
    monkeypatch.setitem(PRETRAINED, NAME, "a tiny test model")
    monkeypatch.chdir(tmp_path)  # no file of the test name where the lookup runs
    return folder


def test_the_shipped_registry_has_the_reference_teacher(monkeypatch: pytest.MonkeyPatch) -> None:
    import fpdctl.pretrained

    assert "synthetic-hg2x64" in PRETRAINED
    monkeypatch.delenv(PRETRAINED_DIR_ENV, raising=False)
    assert pretrained_dir() == Path(fpdctl.pretrained.__file__).resolve().parent


def test_load_by_name(registry: Path) -> None:
    weights = write_entry(registry)
    assert is_pretrained_name(NAME) and not is_pretrained_name("hg1x16")
    net = create_model(NAME)
    assert net.spec.name == "hg1x16" and not net.training
    stored = read_checkpoint(weights)[0]
    for key, value in net.state_dict().items():
        if key in stored:
            assert torch.equal(value, stored[key]), key
    assert checkpoint_file(NAME) == weights
    assert read_checkpoint(NAME)[0].keys() == stored.keys()
    # The input size is the card's, as for a checkpoint trained at that size; a request wins.
    assert resolve_input_size(NAME) == 64 and resolve_input_size(NAME, 128) == 128
    assert resolve_input_size(weights) == 64  # its file too (this one has no header saying so)
    assert pretrained_card(NAME)["pckh_subset"] == {"persons": 8, "value": 10.0}


def test_a_changed_file_is_refused(registry: Path) -> None:
    weights = write_entry(registry)
    expected = file_sha256(weights)
    save_model(make_net("hg1x16", seed=5), weights)  # other weights under the same name
    got = file_sha256(weights)
    with pytest.raises(CheckpointError) as info:
        create_model(NAME)
    assert str(info.value) == (
        f"pretrained model {NAME}: {weights} has sha256 {got[:16]}..., its model card says "
        f"{expected[:16]}...; the file is damaged or replaced: reinstall it"
    )


def test_missing_files_say_not_installed(registry: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        create_model(NAME)
    assert str(info.value) == (
        f"pretrained model {NAME} is not installed: its model card {registry / (NAME + '.json')} is missing"
    )
    write_entry(registry).unlink()
    with pytest.raises(CheckpointError) as info:
        create_model(NAME)
    assert (
        str(info.value) == f"pretrained model {NAME} is not installed: {registry / (NAME + '.safetensors')} is missing"
    )


def test_bad_cards_are_refused(registry: Path) -> None:
    write_entry(registry, name=NAME)
    card = json.loads((registry / f"{NAME}.json").read_text())
    del card["sha256"], card["date"]
    (registry / f"{NAME}.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"lacks sha256, date$"):
        create_model(NAME)
    (registry / f"{NAME}.json").write_text(json.dumps({**card, "sha256": "0", "date": "x", "name": "other"}))
    with pytest.raises(CheckpointError, match=r"is for 'other', not 'test-hg1x16'$"):
        create_model(NAME)
    (registry / f"{NAME}.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read the model card"):
        create_model(NAME)
    assert set(CARD_FIELDS) >= {"sha256", "pckh_subset", "input_size"}


def test_unregistered_names_and_existing_paths(registry: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown pretrained model 'nope'; available: "):
        pretrained_card("nope")
    # A file that happens to carry a registered name is that file, not the registry's.
    write_entry(registry)
    local = save_model(make_net("hg2x16"), tmp_path / "local.safetensors")
    (tmp_path / NAME).write_bytes(local.read_bytes())
    assert not is_pretrained_name(NAME)
    assert create_model(NAME).spec.name == "hg2x16"


def test_listing(registry: Path) -> None:
    rows = {row["name"]: row for row in describe_pretrained()}
    assert rows[NAME]["installed"] is False and rows[NAME]["pckh"] is None and rows[NAME]["command"] is None
    weights = write_entry(registry)
    rows = {row["name"]: row for row in describe_pretrained()}
    assert {k: rows[NAME][k] for k in ("installed", "model", "input_size", "pckh", "steps")} == {
        "installed": True,
        "model": "hg1x16",
        "input_size": 64,
        "pckh": 12.5,
        "steps": 10,
    }
    # The README's promise: the listing holds the card's command, the weights' hash and the date.
    assert {k: rows[NAME][k] for k in ("command", "sha256", "date", "seed")} == {
        "command": "fpdctl train ...",
        "sha256": file_sha256(weights),
        "date": "2025-01-01",
        "seed": 0,
    }


def test_cli_reaches_the_name(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fpdctl.cli.app import main
    from fpdctl.deploy.runtime import open_model

    weights = write_entry(registry)
    assert main(["models", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r for r in listed["pretrained"] if r["name"] == NAME][0]["installed"] is True
    assert "hg4x128" in listed["architectures"]
    # eval by name, at the card's input size (64: the tiny net would refuse nothing else here).
    assert (
        main(["eval", NAME, "--data", "synthetic:length=4", "--no-flip-test", "--device", "cpu", "--format", "json"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["persons"] == 4
    # predict / bench open models through open_model: the name is its file, with its input size.
    source = open_model(NAME)
    assert source.path == weights and source.spec.name == "hg1x16"
