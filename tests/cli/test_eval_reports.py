"""What eval's report calls things (issue 28.10): persons are persons, in the caption and the JSON."""

from __future__ import annotations

import json
import re

import pytest

from fpdctl.cli.app import main

# 4 images of 1..3 persons each: 8 persons, so a count of images and a count of persons differ.
CROWD = ("--data", "synthetic:layout=coco,persons=3,length=4", "--input-size", "64", "--device", "cpu")


def test_the_caption_counts_persons(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "hg1x16", *CROWD, "--no-flip-test", "--format", "markdown"]) == 0
    caption = " ".join(capsys.readouterr().out.split())
    assert "4 images, 8 persons scored; 8 persons at 64 px in " in caption
    assert re.search(r"8 persons at 64 px in [0-9.]+ s \([0-9.]+/s\)", caption)
    assert "images at" not in caption


def test_the_json_speed_is_persons_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "hg1x16", *CROWD, "--no-flip-test", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "images_per_second" not in report
    assert report["images"] == 4 and report["predictions"] == 8
    assert report["persons_per_second"] == pytest.approx(8 / report["seconds"], rel=1e-2, abs=2e-3)
