"""``fpdctl predict --overwrite`` writes only inside ``--out`` and replaces it atomically (issue 28).

* A manifest (the old keypoints.json's ``written``) naming anything but a plain file inside the
  folder (``../x``, an absolute path, a folder, a symbolic link) is one error line, exit 2, and
  nothing changes: not the file it points at, not the folder.
* A run that fails mid-way (a file-size limit stops its second drawing) or is killed with
  SIGKILL mid-way (a test-side launcher kills it right after its first drawing; a video run is
  killed from outside once its video file exists) leaves the old output byte for byte; the next
  run cleans the killed run's hidden folder and succeeds.
* Killed right after the swap: the folder is the new output, complete.

The children run the real CLI (``python -m fpdctl`` or a launcher that wraps one real function
and then calls the real ``main``); product code holds no hooks.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from fpdctl.cli.app import main
from fpdctl.deploy.output_folder import STAGE_TAG

TIMEOUT_S = 180

# ``python launcher.py MOMENT FPDCTL_ARGS...``: installs the hook named MOMENT, then runs the
# real CLI. Exit 3: the hook found the run in an unexpected state; exit 4: this file system has
# no atomic exchange (the after-swap moment cannot be reached).
LAUNCHER = r"""
import os
import signal
import sys

moment = sys.argv[1]
sys.argv = ["fpdctl", *sys.argv[2:]]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def wrong(message):
    print(f"hook {moment}: {message}", file=sys.stderr, flush=True)
    os._exit(3)


if moment == "after-first-drawing":
    import fpdctl.utils.io as io

    real = io.atomic_write_bytes

    def atomic_write_bytes(path, data):
        real(path, data)
        if ".fpdctl-" not in os.path.basename(os.path.dirname(str(path))):
            wrong(f"a drawing written outside a stage: {path}")
        die()

    io.atomic_write_bytes = atomic_write_bytes

elif moment == "after-swap":
    import fpdctl.deploy.output_folder as output_folder

    real = output_folder._exchange

    def _exchange(a, b):
        if not real(a, b):
            os._exit(4)
        die()

    output_folder._exchange = _exchange

else:
    wrong("unknown moment")

from fpdctl.cli.app import main

sys.exit(main())
"""


def _tree(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: a file's sha256, a link's target, or "folder"."""
    found = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = "-> " + os.readlink(path)
        elif path.is_dir():
            found[name] = "folder"
        else:
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _stages(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}{STAGE_TAG}"))


def _images(folder: Path, names: tuple[str, ...], seed: int, big: str | None = None) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for name in names:
        side = (400, 400) if name == big else (60, 80)
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (*side, 3), dtype=np.uint8))
    return folder


@pytest.fixture
def earlier(tmp_path: Path, tiny_checkpoint: Path) -> dict[str, Path]:
    """An earlier predict's output (``out``: a.png, b.png, c.png and keypoints.json), a file
    beside it (``precious``) and a second folder of inputs (``new``: d.png, e.png)."""
    old_inputs = _images(tmp_path / "old_inputs", ("a.png", "b.png", "c.png"), seed=1)
    out = tmp_path / "out"
    assert main(["predict", str(tiny_checkpoint), str(old_inputs), "--out", str(out), "--input-size", "64"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png", "keypoints.json"]
    precious = tmp_path / "precious.txt"
    precious.write_text("a user's file beside the output folder\n")
    new = _images(tmp_path / "new_inputs", ("d.png", "e.png"), seed=2, big="e.png")
    return {"root": tmp_path, "out": out, "precious": precious, "new": new, "model": tiny_checkpoint}


def _set_manifest(out: Path, entry: str) -> None:
    manifest = json.loads((out / "keypoints.json").read_text())
    manifest["written"] = ["a.png", entry]
    (out / "keypoints.json").write_text(json.dumps(manifest))


def _outside(s: dict[str, Path]) -> str:
    return "../precious.txt"


def _absolute(s: dict[str, Path]) -> str:
    return str(s["precious"])


def _folder(s: dict[str, Path]) -> str:
    (s["out"] / "sub").mkdir()
    (s["out"] / "sub" / "inside.txt").write_text("in a folder the manifest names\n")
    return "sub"


def _link(s: dict[str, Path]) -> str:
    os.symlink("../precious.txt", s["out"] / "link.png")
    return "link.png"


def _through_a_folder(s: dict[str, Path]) -> str:
    return "a.png/../../precious.txt"


BAD_MANIFESTS = {
    "../precious.txt": (_outside, "which is not a file inside that folder"),
    "an absolute path": (_absolute, "which is not a file inside that folder"),
    "a folder": (_folder, "which is not a plain file"),
    "a symbolic link": (_link, "which is a symbolic link"),
    "a path out through ..": (_through_a_folder, "which is not a file inside that folder"),
}


@pytest.mark.parametrize("name", list(BAD_MANIFESTS))
def test_a_manifest_naming_anything_but_its_own_files_is_refused(
    name: str, earlier: dict[str, Path], capfd: Any, reliability: Any
) -> None:
    make_entry, why = BAD_MANIFESTS[name]
    out, precious = earlier["out"], earlier["precious"]
    entry = make_entry(earlier)
    _set_manifest(out, entry)
    reliability.describe(
        "predict output folder",
        f"fpdctl predict MODEL images/ --out OUT --overwrite, OUT/keypoints.json lists {name}",
        "exit 2, one 'error:' line naming the entry, nothing deleted or written",
    )
    before, beside = _tree(out), precious.read_bytes()
    capfd.readouterr()
    args = ["predict", str(earlier["model"]), str(earlier["new"]), "--out", str(out), "--overwrite"]
    code = main([*args, "--input-size", "64"])
    err = capfd.readouterr().err.strip().splitlines()
    reliability.observe(f"exit {code}: {' | '.join(err).replace(str(earlier['root']) + '/', '')}")
    assert code == 2 and err == [
        f"error: --out {out}: its keypoints.json lists {json.dumps(entry)}, {why}; --overwrite replaces only "
        "plain files inside --out: nothing was changed"
    ]
    assert _tree(out) == before and precious.read_bytes() == beside
    assert _stages(out) == []


def _child(args: list[str], moment: str | None = None, root: Path | None = None, limit: int | None = None):
    """The real CLI in a child: plain, under a launcher hook, or under a file-size limit."""

    def lower_limit() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [sys.executable, "-m", "fpdctl", *args]
    if moment is not None:
        assert root is not None
        launcher = root / "launcher.py"
        launcher.write_text(LAUNCHER)
        command = [sys.executable, str(launcher), moment, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FPDCTL_DEBUG": ""}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, preexec_fn=lower_limit)


def _overwrite_args(s: dict[str, Path], source: Path | None = None) -> list[str]:
    return ["predict", str(s["model"]), str(source or s["new"]), "--out", str(s["out"]), "--overwrite"] + [
        "--input-size",
        "64",
    ]


def _next_run_cleans_up(s: dict[str, Path]) -> None:
    done = _child(_overwrite_args(s))
    assert done.returncode == 0, done.stderr
    assert _stages(s["out"]) == []
    assert sorted(p.name for p in s["out"].iterdir()) == ["d.png", "e.png", "keypoints.json"]
    assert json.loads((s["out"] / "keypoints.json").read_text())["written"] == ["d.png", "e.png"]


def test_a_run_failing_mid_way_leaves_the_old_output(earlier: dict[str, Path], reliability: Any) -> None:
    out = earlier["out"]
    limit = 64 * 1024  # d.png (60 x 80) fits, e.png (400 x 400 of noise, ~470 KB) does not
    reliability.describe(
        "predict output folder",
        f"fpdctl predict --overwrite, the second drawing past a {limit} B file-size limit",
        "exit 1, one error line naming OUT/e.png, OUT byte for byte as before, no hidden folder left",
    )
    before = _tree(out)
    done = _child(_overwrite_args(earlier), limit=limit)
    lines = done.stderr.strip().splitlines()
    reliability.observe(f"exit {done.returncode}: {lines[-1].replace(str(earlier['root']) + '/', '') if lines else ''}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert lines == [f"error: could not write {out}/e.png: File too large"]
    assert _tree(out) == before and _stages(out) == []


def test_kill_after_the_first_drawing_leaves_the_old_output(earlier: dict[str, Path], reliability: Any) -> None:
    out = earlier["out"]
    reliability.describe(
        "predict output folder",
        "kill -9 fpdctl predict --overwrite right after its first drawing is written",
        "OUT byte for byte as before; the next run removes the killed run's hidden folder and succeeds",
    )
    before = _tree(out)
    done = _child(_overwrite_args(earlier), moment="after-first-drawing", root=earlier["root"])
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert _tree(out) == before
    (stage,) = _stages(out)  # the killed run's, with its one drawing
    assert sorted(p.name for p in (out.parent / stage).iterdir()) == ["d.png"]
    _next_run_cleans_up(earlier)
    reliability.observe(
        "killed (SIGKILL); OUT unchanged; the next run removed the hidden folder and wrote d.png, e.png"
    )


def test_kill_right_after_the_swap_leaves_the_new_output(earlier: dict[str, Path], reliability: Any) -> None:
    out = earlier["out"]
    reliability.describe(
        "predict output folder",
        "kill -9 fpdctl predict --overwrite right after the new output is swapped in",
        "OUT is the new output, complete; the next run removes the old one, set aside",
    )
    old = _tree(out)
    done = _child(_overwrite_args(earlier), moment="after-swap", root=earlier["root"])
    if done.returncode == 4:
        pytest.skip("this file system has no atomic exchange (renameat2 RENAME_EXCHANGE)")
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["d.png", "e.png", "keypoints.json"]
    assert json.loads((out / "keypoints.json").read_text())["written"] == ["d.png", "e.png"]
    (stage,) = _stages(out)  # the old output, under the stage's name
    assert _tree(out.parent / stage) == old
    _next_run_cleans_up(earlier)
    reliability.observe("killed (SIGKILL) after the swap; OUT was the new output; the next run removed the old")


def test_kill_a_video_run_from_outside(earlier: dict[str, Path], reliability: Any) -> None:
    out, root = earlier["out"], earlier["root"]
    video = root / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (96, 64))
    rng = np.random.default_rng(3)
    for _ in range(400):
        writer.write(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    writer.release()
    reliability.describe(
        "predict output folder",
        "kill -9 (from outside) fpdctl predict VIDEO --overwrite once its video file exists",
        "OUT byte for byte as before; the next run removes the killed run's hidden folder",
    )
    before = _tree(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FPDCTL_DEBUG": ""}
    child = subprocess.Popen(
        [sys.executable, "-m", "fpdctl", *_overwrite_args(earlier, video)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline and child.poll() is None:
            stages = [out.parent / name for name in _stages(out)]
            if any((stage / "clip_pose.mp4").exists() for stage in stages):
                break
            time.sleep(0.005)
    finally:
        child.kill()
        code = child.wait()
    assert code == -signal.SIGKILL, "the run ended before its video file was seen"
    assert _tree(out) == before
    assert len(_stages(out)) == 1
    _next_run_cleans_up(earlier)
    reliability.observe("killed (SIGKILL) mid-video; OUT unchanged; the next run removed the hidden folder")
