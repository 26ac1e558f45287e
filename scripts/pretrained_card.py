"""Install a finished training run as a pretrained model: copy its weights and write its card.

    python scripts/pretrained_card.py RUN_DIR --name synthetic-hg2x64 --command "fpdctl train ..."

Copies RUN_DIR/last.safetensors to fpdctl/pretrained/NAME.safetensors, scores it with the real
evaluation path (PCKh@0.5, pooled mean, flip test, at its training input size) on the whole
synthetic validation split and on the fixed subset that tests/test_pretrained.py checks, and
writes fpdctl/pretrained/NAME.json (the model card) with the file's sha256.

A model trained on COCO-layout data (``synthetic:layout=coco``) is scored with COCO keypoint AP
instead (pycocotools, flip test): ``ap`` on the whole validation split with the ground-truth
boxes, ``ap_subset`` on the first persons, and ``ap_detector`` on the boxes of the SIMULATED
detector (the split exported with ``fpdctl data synth --layout coco --detections``, then
``fpdctl eval --boxes``'s path).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

from fpdctl.data.registry import build_dataset
from fpdctl.data.subset import FirstPersons
from fpdctl.evaluation import evaluate_model
from fpdctl.models.factory import create_model
from fpdctl.utils.io import atomic_write_text

# The subset the test scores: small enough for CI (a few seconds), large enough to mean something.
SUBSET_PERSONS = 64


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _coco_scores(net, val, size, full, subset) -> dict:  # type: ignore[no-untyped-def]
    """AP on ground-truth boxes (whole split, subset) and on the simulated detector's boxes."""
    from fpdctl.data.coco import COCODetections
    from fpdctl.data.synthetic import export_coco

    with tempfile.TemporaryDirectory() as tmp:
        folder, dets = Path(tmp) / "coco", Path(tmp) / "detections.json"
        exported = export_coco(
            folder,
            val.num_images,
            image_size=val.image_size,
            seed=val.seed,
            split="val",
            persons=val.persons,
            detections=dets,
        )
        boxed = evaluate_model(
            net, COCODetections(folder, dets, input_size=size), flip_test=True, batch_size=32, device="cpu"
        )
    return {
        "ap": round(float(full.metric.mean), 2),
        "ap_subset": {"persons": SUBSET_PERSONS, "value": round(float(subset.metric.mean), 2)},
        "ap_detector": {
            "value": round(float(boxed.metric.mean), 2),
            "boxes": f"simulated detector (fpdctl data synth --layout coco --detections), "
            f"{exported.num_detections} boxes",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--command", required=True, help="the command that made the run")
    args = parser.parse_args()
    config = json.loads((args.run / "config.json").read_text())
    options = config.get("options", config)
    target = Path(__file__).resolve().parents[1] / "fpdctl" / "pretrained" / f"{args.name}.safetensors"
    shutil.copyfile(args.run / "last.safetensors", target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    size = int(options["input_size"])
    net = create_model(target)
    val = build_dataset(options["data"], "val", input_size=size)
    full = evaluate_model(net, val, flip_test=True, batch_size=32, device="cpu")
    subset = evaluate_model(net, FirstPersons(val, SUBSET_PERSONS), flip_test=True, batch_size=32, device="cpu")
    if full.metric.metric == "oks":
        scores = _coco_scores(net, val, size, full, subset)
        metric = (
            "COCO keypoint AP (pycocotools, OKS 0.50:0.95, flip test) on the synthetic COCO "
            "validation split, ground-truth boxes"
        )
    else:
        scores = {
            "pckh": round(float(full.metric.mean), 2),
            "pckh_subset": {"persons": SUBSET_PERSONS, "value": round(float(subset.metric.mean), 2)},
        }
        metric = "PCKh@0.5 (pooled mean, flip test) on the synthetic validation split"
    card = {
        "name": args.name,
        "model": net.spec.name,
        "input_size": size,
        "command": args.command,
        "steps": int(options["max_steps"]),
        "seed": int(options["seed"]),
        "data": options["data"],
        "metric": metric,
        "val_persons": len(val),
        **scores,
        "sha256": digest,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{_cpu_name()}, {platform.system()} {platform.machine()}",
    }
    atomic_write_text(target.with_suffix(".json"), json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
