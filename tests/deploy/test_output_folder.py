"""predict's output folder (fpdctl.deploy.output_folder): staged beside, swapped in whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpdctl.api import predict
from fpdctl.deploy.output_folder import STAGE_TAG, StagedFolder, previous_outputs, remove_stale_stages
from fpdctl.deploy.predict import JSON_NAME
from fpdctl.errors import UsageError
from tests.conftest import INPUT_SIZE

fcntl = pytest.importorskip("fcntl")


def _stages(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}{STAGE_TAG}"))


def _images(folder: Path, names: tuple[str, ...]) -> Path:
    folder.mkdir()
    for k, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((40, 50, 3), 40 * k, np.uint8))
    return folder


def _run(ckpt: Path, source: Path, out: Path, **kwargs):  # type: ignore[no-untyped-def]
    return predict(str(ckpt), source, out=out, threads=1, input_size=INPUT_SIZE, **kwargs)


def test_a_run_interrupted_mid_way_leaves_the_old_output(tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "out"
    _run(tiny_checkpoint, _images(tmp_path / "old", ("a.png", "b.png")), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    new = _images(tmp_path / "new", ("c.png", "d.png", "e.png"))
    seen = []

    def interrupt(event):  # type: ignore[no-untyped-def]
        seen.append(sorted(p.name for p in (tmp_path / _stages(out)[0]).iterdir()))
        raise KeyboardInterrupt  # Ctrl-C after the drawings, before keypoints.json

    with pytest.raises(KeyboardInterrupt):
        _run(tiny_checkpoint, new, out, overwrite=True, progress=interrupt)
    # The folder's images ran as one batch (FOLDER_BATCH): their drawings went to the stage.
    assert seen == [["c.png", "d.png", "e.png"]]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _stages(out) == []
    # The same run to its end: the old drawings go, the new ones come, nothing is left beside.
    result = _run(tiny_checkpoint, new, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["c.png", "d.png", "e.png", JSON_NAME]
    assert result.json_path == out / JSON_NAME and result.drawn == [out / n for n in ("c.png", "d.png", "e.png")]
    assert json.loads((out / JSON_NAME).read_text())["written"] == ["c.png", "d.png", "e.png"]
    assert _stages(out) == []


def test_a_new_folder_and_an_out_dir_through_a_link(tmp_path: Path, tiny_checkpoint: Path) -> None:
    images = _images(tmp_path / "images", ("a.png",))
    out = tmp_path / "deep" / "er" / "out"
    _run(tiny_checkpoint, images, out)
    assert sorted(p.name for p in out.iterdir()) == ["a.png", JSON_NAME] and _stages(out) == []
    link = tmp_path / "link"
    link.symlink_to(out)
    _run(tiny_checkpoint, images, link, overwrite=True)  # the folder it points at is replaced
    assert link.is_symlink() and sorted(p.name for p in link.iterdir()) == ["a.png", JSON_NAME]
    assert _stages(out) == [] and _stages(link) == []


def test_the_new_folder_keeps_the_old_ones_permissions(tmp_path: Path, tiny_checkpoint: Path) -> None:
    images = _images(tmp_path / "images", ("a.png",))
    out = tmp_path / "out"
    out.mkdir(mode=0o750)
    os.chmod(out, 0o750)
    _run(tiny_checkpoint, images, out)
    assert (out.stat().st_mode & 0o777) == 0o750


def test_a_stage_still_locked_is_left_alone_and_a_dead_one_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    alive = tmp_path / f".out{STAGE_TAG}0a1b2c3d"
    dead = tmp_path / f".out{STAGE_TAG}deadbeef"
    set_aside = tmp_path / f".out{STAGE_TAG}old-01234567"  # the two-rename swap's: never removed
    other = tmp_path / f".other{STAGE_TAG}deadbeef"  # another output folder's
    for folder in (alive, dead, set_aside, other):
        folder.mkdir()
        (folder / "x.png").write_bytes(b"x")
    fd = os.open(alive, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a run still writing there
        assert remove_stale_stages(out) == [dead]
    finally:
        os.close(fd)
    assert alive.exists() and not dead.exists() and set_aside.exists() and other.exists()
    assert remove_stale_stages(out) == [alive]


def test_a_file_added_during_the_run_stays(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / JSON_NAME).write_text(json.dumps({"written": ["a.png"]}))
    (out / "a.png").write_bytes(b"old drawing")
    previous = previous_outputs(out, overwrite=True)
    assert previous == {"a.png", JSON_NAME}
    with StagedFolder(out) as stage:
        assert stage.path is not None and stage.path.parent == tmp_path
        (stage.path / "a.png").write_bytes(b"new drawing")
        (stage.path / JSON_NAME).write_text("{}")
        (out / "notes.txt").write_text("the user's, written while the run went on")
        stage.commit(previous)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        "a.png": b"new drawing",
        JSON_NAME: b"{}",
        "notes.txt": b"the user's, written while the run went on",
    }
    assert stage.warnings == [] and _stages(out) == []


def test_an_error_names_the_folder_given_not_the_stage(tmp_path: Path) -> None:
    from fpdctl.errors import RuntimeFailure

    out = tmp_path / "out"
    with pytest.raises(RuntimeFailure, match=rf"^could not write {out}/a.png: disk full$"):
        with StagedFolder(out) as stage:
            raise RuntimeFailure(f"could not write {stage.path}/a.png: disk full")
    assert not out.exists() and _stages(out) == []


def test_a_manifest_that_is_a_link_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere.json").write_text(json.dumps({"written": []}))
    (out / JSON_NAME).symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(UsageError, match=rf"^`out` {out}: keypoints.json is a symbolic link"):
        previous_outputs(out, overwrite=True)


def test_without_an_atomic_exchange_two_renames_swap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fpdctl.deploy.output_folder as output_folder

    monkeypatch.setattr(output_folder, "_exchange", lambda a, b: False)  # an OS or file system without it
    out = tmp_path / "out"
    out.mkdir()
    (out / JSON_NAME).write_text(json.dumps({"written": ["a.png", "b.png"]}))
    (out / "a.png").write_bytes(b"old a")
    (out / "b.png").write_bytes(b"old b")
    previous = previous_outputs(out, overwrite=True)
    with StagedFolder(out) as stage:
        assert stage.path is not None
        (stage.path / "a.png").write_bytes(b"new a")
        (stage.path / JSON_NAME).write_text(json.dumps({"written": ["a.png"]}))
        stage.commit(previous)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {"a.png": b"new a", JSON_NAME: b'{"written": ["a.png"]}'}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_run_removes_the_folders_it_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fpdctl.cli.app import main

    images = _images(tmp_path / "images", ("a.png",))
    missing = tmp_path / "missing.safetensors"
    out = tmp_path / "made" / "for" / "out"
    code = main(["predict", str(missing), str(images), "--out", str(out), "--input-size", "64"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(missing) in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_out_dir_holding_the_current_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    monkeypatch.chdir(out / "sub")
    with pytest.raises(UsageError, match=rf"^`out` {out} holds the current folder"):
        with StagedFolder(out):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
