"""Make the real Ultralytics detector exports and their golden boxes under tests/deploy/fixtures/ultralytics/.

Not run by the tests (it needs Ultralytics, which fpdctl does not depend on). It documents how the
committed files were made, and re-makes them:

    python3.11 -m venv /tmp/ulv
    /tmp/ulv/bin/pip install torch==2.13.0            # the CPU wheel
    echo torch==2.13.0 > /tmp/c.txt
    /tmp/ulv/bin/pip install -c /tmp/c.txt ultralytics==8.4.190 onnx onnxslim onnxruntime==1.32.0 \
        opencv-python-headless==4.14.0.94
    /tmp/ulv/bin/pip uninstall -y opencv-python        # the same OpenCV as fpdctl's environment
    /tmp/ulv/bin/python scripts/make_ultralytics_fixtures.py [LSPET_IMAGES_DIR]

Each model is built from Ultralytics' own yaml at a tiny width (random weights, seeded; nothing is
downloaded) and exported with Ultralytics' own exporter (``model.export(format="onnx")``):

* ``yolov8-det.onnx``: the YOLOv8 head, output0 [1, 4 + C, A], C = 3 classes;
* ``yolo26-det.onnx``: YOLO26 exported with ``nms=False`` (its end-to-end head; this release keeps
  the one-to-many head unless told): output0 [1, 300, 6], boxes already suppressed;
* ``yolov8-pose.onnx``: the YOLOv8 pose head, output0 [1, 56, A] (1 class, 17 x 3 keypoints).

No ``nms=True`` export: it traces torchvision's NMS into the graph, and the torchvision wheels
this machine can get are CUDA builds that do not load with the CPU torch (``libc10_cuda.so``
missing). For the same reason the predictions below run with a stand-in ``torchvision`` module
whose ``ops.nms`` is Ultralytics' own ``TorchNMS.nms`` (its fallback when torchvision is absent,
documented to match torchvision exactly): Ultralytics' predictor imports torchvision
unconditionally for non-end-to-end models. YOLO26's export is the real [1, 300, 6] layout.

Then Ultralytics' own ``predict()`` runs each .onnx file on every image at fixed low thresholds
(random weights score low), persons only (``classes=[0]``), and its boxes (x1, y1, x2, y2 in
image px) and scores go to ``golden.json``. The images: LSPET photos of varied sizes (when the
folder is given; the test skips them without shared data) and images the test re-makes from a
seed (:func:`synthetic_images`, identical in both environments: numpy's PCG64), down to 1 px
wide and tall, and 2048 x 1147.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "deploy" / "fixtures" / "ultralytics"
IMGSZ = 160
# Tiny scale [depth, width, max_channels]: the smallest widths Ultralytics' make_divisible allows.
SCALE = [0.33, 0.0625, 64]
NAMES = {0: "person", 1: "bicycle", 2: "car"}
LSPET = ("im00001.jpg", "im00121.jpg", "im00201.jpg", "im00241.jpg")
# model file -> (yaml, export options, conf, iou): conf is low enough that random weights find boxes.
MODELS = {
    "yolov8-det.onnx": ("yolov8.yaml", {}, 0.001, 0.7),
    "yolo26-det.onnx": ("yolo26.yaml", {"nms": False}, 0.005, 0.7),
    "yolov8-pose.onnx": ("yolov8-pose.yaml", {}, 0.03, 0.7),
}


def synthetic_images() -> dict[str, np.ndarray]:
    """Seeded BGR uint8 images of odd sizes (the test makes the same ones)."""
    rng = np.random.default_rng(20261207)
    sizes = {"tall-600x1": (600, 1), "wide-1x600": (1, 600), "big-1147x2048": (1147, 2048), "odd-37x517": (37, 517)}
    images = {}
    for name, (h, w) in sizes.items():
        # smooth colour waves and a few flat rectangles (a random network finds little in noise)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        phase = rng.uniform(0, 6.3, 3)
        waves = [127 + 120 * np.sin(xx / (17 + 13 * c) + phase[c]) * np.cos(yy / (29 - 7 * c)) for c in range(3)]
        image = np.stack(waves, axis=-1).astype(np.uint8)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            x1, y1 = x0 + int(rng.integers(1, max(2, w // 3))), y0 + int(rng.integers(1, max(2, h // 3)))
            image[y0:y1, x0:x1] = rng.integers(0, 256, 3, dtype=np.uint8)
        images[name] = image
    return images


def build(yaml_name: str, seed: int, work: Path):
    """A YOLO model from Ultralytics' own yaml at the tiny :data:`SCALE`, random weights (seeded)."""
    import torch
    from ultralytics import YOLO
    from ultralytics.utils import YAML
    from ultralytics.utils.checks import check_yaml

    cfg = YAML.load(check_yaml(yaml_name))
    cfg["scales"] = {"n": SCALE}
    pose = "pose" in yaml_name
    cfg["nc"] = 1 if pose else len(NAMES)
    tiny = work / yaml_name.replace(".yaml", "-tiny.yaml")
    YAML.save(tiny, cfg)
    torch.manual_seed(seed)
    yolo = YOLO(str(tiny))
    # Ultralytics' init leaves a random tiny network's output nearly constant (every box and score
    # the same): He-normal weights, then batch-norm statistics from a few random batches, make the
    # boxes and scores depend on the image. (The DFL conv is a fixed 0..15 ramp: left alone.)
    with torch.no_grad():
        for name, module in yolo.model.named_modules():
            if isinstance(module, torch.nn.Conv2d) and not name.endswith("dfl.conv"):
                fan_in = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5)
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # a cumulative average over the batches below
        yolo.model.train()
        for _ in range(4):
            yolo.model(torch.rand(8, 3, IMGSZ, IMGSZ))
        yolo.model.eval()
    yolo.model.names = {0: "person"} if pose else dict(NAMES)
    return yolo


def stand_in_torchvision() -> None:
    """A ``torchvision`` module whose ``ops.nms`` is Ultralytics' own TorchNMS.nms (see above)."""
    import types

    def nms(boxes, scores, iou_threshold):
        from ultralytics.utils.nms import TorchNMS

        return TorchNMS.nms(boxes, scores, iou_threshold)

    torchvision = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.nms = nms
    torchvision.ops = ops
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = torchvision, ops


def main() -> None:
    stand_in_torchvision()
    import cv2
    import ultralytics
    from ultralytics import YOLO

    lspet_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    OUT.mkdir(parents=True, exist_ok=True)
    images = synthetic_images()
    if lspet_dir is not None:
        for name in LSPET:
            images[f"lspet/{name}"] = cv2.imread(str(lspet_dir / name))
    golden = {
        "ultralytics": ultralytics.__version__,
        "imgsz": IMGSZ,
        "images": {
            k: {"shape": list(v.shape), "sha256": hashlib.sha256(v.tobytes()).hexdigest()} for k, v in images.items()
        },
        "models": {},
    }
    work = Path("/tmp/ulv_export")
    work.mkdir(exist_ok=True)
    built = {}
    for index, (file, (yaml_name, options, conf, iou)) in enumerate(MODELS.items()):
        if yaml_name not in built:
            built[yaml_name] = build(yaml_name, seed=index, work=work)
        yolo = built[yaml_name]
        pt = work / file.replace(".onnx", ".pt")
        yolo.save(str(pt))
        exported = YOLO(str(pt)).export(format="onnx", imgsz=IMGSZ, simplify=True, **options)
        target = OUT / file
        target.write_bytes(Path(exported).read_bytes())
        onnx_model = YOLO(str(target), task=yolo.task)
        boxes = {}
        for name, image in images.items():
            (result,) = onnx_model.predict(image, imgsz=IMGSZ, conf=conf, iou=iou, classes=[0], verbose=False)
            boxes[name] = {
                "xyxy": result.boxes.xyxy.numpy().astype(float).tolist(),
                "scores": result.boxes.conf.numpy().astype(float).tolist(),
            }
        golden["models"][file] = {"conf": conf, "iou": iou, "export": options, "boxes": boxes}
        counts = {k: len(v["scores"]) for k, v in boxes.items()}
        print(file, target.stat().st_size, "bytes", counts)
    (OUT / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
