"""``fpdctl predict`` on crowds: images/s and persons/s with K = 1, 4 and 16 persons per image.

Prints a table and writes JSON (default benchmarks/results/predict_crowd.json).

    python benchmarks/predict_crowd.py [--rounds 9] [--images 8] [--threads 1] [--write-example DIR]

The model: the shipped ``synthetic-hg2x64`` (128 px input), exported by ``fpdctl export`` to ONNX
fp32 and run with ONNX Runtime (backend row ``ort``), through the model object predict runs
(:class:`fpdctl.Pose <fpdctl.deploy.pose.Pose>`). The crowd: K persons of fpdctl's synthetic renderer
(validation split, 128 px) pasted on a 512 x 512 black canvas in a 4 x 4 grid, with their cells as
the person boxes (the boxes a ``--boxes`` file would give). Per image, what predict does for it:
the K boxes -> the COCO crops -> ONE batch of K through the network -> decode -> image px
(:meth:`Pose.run`); the image is already decoded (file reading and drawing excluded).

Rounds: each round times ``--images`` images at every K, the Ks interleaved in a rotating order
so that load from other jobs hits all alike. Reported: the median over rounds and the spread
(min-max of the rounds), and the K=16 / K=1 persons/s ratio computed round by round.

``--write-example DIR`` also writes the README's picture: predict's drawing of a 4-person crowd
(``DIR/predict_crowd.jpg``) and its boxes file, made by ``fpdctl predict``'s core function.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

MODEL = "synthetic-hg2x64"
INPUT_SIZE = 128
CANVAS = 512
KS: tuple[int, ...] = (1, 4, 16)


def crowd(k: int) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """A CANVAS x CANVAS BGR image with ``k`` synthetic persons in a 4 x 4 grid, and their boxes."""
    from fpdctl.data.synthetic import SyntheticPose

    data = SyntheticPose(split="val", input_size=INPUT_SIZE)
    canvas = np.zeros((CANVAS, CANVAS, 3), np.uint8)
    boxes = []
    for i in range(k):
        y, x = divmod(i, CANVAS // INPUT_SIZE)
        canvas[y * INPUT_SIZE : (y + 1) * INPUT_SIZE, x * INPUT_SIZE : (x + 1) * INPUT_SIZE] = data.load_record(i).image
        boxes.append((float(x * INPUT_SIZE), float(y * INPUT_SIZE), float(INPUT_SIZE), float(INPUT_SIZE)))
    return canvas, boxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--images", type=int, default=8, help="images per K per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "predict_crowd.json")
    parser.add_argument("--write-example", type=Path, default=None)
    args = parser.parse_args()

    from fpdctl.deploy.boxes import BoxesFile, FileBox
    from fpdctl.deploy.export import export_onnx
    from fpdctl.deploy.persons import PersonSource
    from fpdctl.deploy.pose import Pose

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / f"{MODEL}.onnx"
        export_onnx(MODEL, onnx_path, input_size=INPUT_SIZE, threads=args.threads)
        net = Pose(onnx_path, device="cpu", threads=args.threads)
        assert net.backend.name == "ort", net.backend.name
        scenes = {}
        for k in KS:
            image, boxes = crowd(k)
            file_boxes = BoxesFile(Path("crowd.json"), {0: [FileBox(b, 1.0, i) for i, b in enumerate(boxes)]})
            source = PersonSource(boxes=file_boxes)
            scenes[k] = (image, source)
            net.run([(image, "")], [source.find(image, 0, "warmup")])  # warm-up (ORT plans its buffers)

        seconds: dict[int, list[float]] = {k: [] for k in KS}
        for r in range(args.rounds):
            order = KS[r % len(KS) :] + KS[: r % len(KS)]
            for k in order:
                image, source = scenes[k]
                start = time.perf_counter()
                for _ in range(args.images):
                    persons = net.run([(image, "")], [source.find(image, 0, "crowd")])[0].persons
                seconds[k].append((time.perf_counter() - start) / args.images)
                assert len(persons) == k

        if args.write_example is not None:
            write_example(str(onnx_path), args.write_example)

    rows = []
    for k in KS:
        per_image = np.asarray(seconds[k])
        images_s = 1.0 / per_image
        rows.append(
            {
                "k": k,
                "ms_per_image_median": float(np.median(per_image) * 1e3),
                "images_per_s_median": float(np.median(images_s)),
                "images_per_s_min": float(images_s.min()),
                "images_per_s_max": float(images_s.max()),
                "persons_per_s_median": float(np.median(images_s * k)),
                "persons_per_s_min": float(images_s.min() * k),
                "persons_per_s_max": float(images_s.max() * k),
            }
        )
    ratios = (np.asarray(seconds[1]) * 16) / np.asarray(seconds[16])  # persons/s K=16 over K=1, per round
    print(
        f"{MODEL} at {INPUT_SIZE} px, ONNX Runtime fp32, {args.threads} thread(s), "
        f"{args.rounds} rounds x {args.images} images per K"
    )
    print(f"{'K':>3} {'ms/image':>9} {'images/s':>9} {'(min-max)':>15} {'persons/s':>10} {'(min-max)':>15}")
    for row in rows:
        print(
            f"{row['k']:>3} {row['ms_per_image_median']:>9.1f} {row['images_per_s_median']:>9.1f} "
            f"{row['images_per_s_min']:>7.1f}-{row['images_per_s_max']:<7.1f} {row['persons_per_s_median']:>10.1f} "
            f"{row['persons_per_s_min']:>7.1f}-{row['persons_per_s_max']:<7.1f}"
        )
    print(f"persons/s K=16 / K=1: median {np.median(ratios):.2f} (rounds {ratios.min():.2f}-{ratios.max():.2f})")
    result = {
        "date": str(date.today()),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "model": MODEL,
        "input_size": INPUT_SIZE,
        "runtime": "onnxruntime fp32",
        "threads": args.threads,
        "rounds": args.rounds,
        "images_per_round": args.images,
        "rows": rows,
        "ratio_k16_over_k1_median": float(np.median(ratios)),
        "ratio_k16_over_k1_min": float(ratios.min()),
        "ratio_k16_over_k1_max": float(ratios.max()),
        "seconds_per_image": {str(k): v for k, v in seconds.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


def write_example(onnx_path: str, folder: Path) -> None:
    """The README's picture: 4 persons with a boxes file, drawn by predict."""
    import cv2

    from fpdctl.api import predict

    folder.mkdir(parents=True, exist_ok=True)
    image, boxes = crowd(16)
    image = image[: 2 * INPUT_SIZE]  # the first two grid rows: 8 persons, 512 x 256
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "crowd.png"
        cv2.imwrite(str(source), image)
        entries = [{"file_name": "crowd.png", "bbox": list(b), "score": 1.0, "category_id": 1} for b in boxes[:8]]
        (Path(tmp) / "boxes.json").write_text(json.dumps(entries))
        predict(onnx_path, source, out=Path(tmp) / "out", boxes=Path(tmp) / "boxes.json", threads=1)
        drawn = cv2.imread(str(Path(tmp) / "out" / "crowd.png"))
    cv2.imwrite(str(folder / "predict_crowd.jpg"), drawn, [cv2.IMWRITE_JPEG_QUALITY, 85])


if __name__ == "__main__":
    main()
