"""Train the small shape detector the tests use: object_service/models/shapes-yolo.pt.

Everything is synthetic and deterministic (object_service/synthetic.py):

  * train/val scenes:  write_yolo_dataset(seed=SEED)          (SEED = 1234)
  * held-out scenes:   write_yolo_dataset(seed=HELDOUT_SEED)   (HELDOUT_SEED = 98765)

Scenes are drawn at 640x480 and stored at IMGSZ (320 px on the long side), the size
the detector is trained and, by default, predicts at.  The model is a narrow YOLOv8
(width 0.125 of the yolov8 yaml, ~0.9M parameters) trained from scratch on the CPU:
no pretrained weights are needed, nothing is downloaded.  Runs, datasets and
checkpoints go to a scratch directory (default: a new /tmp/percept-shapes-*), never
the repo.

At the end it evaluates mAP50 / mAP50-95 on the held-out set, copies the best
weights to object_service/models/shapes-yolo.pt and rewrites
object_service/models/README.md with the numbers.

    python scripts/train_test_model.py            # what `make test-model` runs
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Offline, before ultralytics is imported: no hub, no analytics, no version checks.
os.environ.setdefault("YOLO_OFFLINE", "1")
# ultralytics sets OMP_NUM_THREADS=1 on import unless it is already set.
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from object_service.synthetic import CLASS_NAMES, write_yolo_dataset  # noqa: E402

SEED = 1234
HELDOUT_SEED = 98765
IMGSZ = 320
EPOCHS = 16
N_TRAIN = 1000
N_VAL = 150
N_HELDOUT = 500
# yolov8 depth/width multipliers; width 0.125 is half of yolov8n (~0.9M params, 3x faster).
DEPTH, WIDTH = 0.33, 0.125

MODELS_DIR = REPO / "object_service" / "models"
WEIGHTS = MODELS_DIR / "shapes-yolo.pt"


def model_yaml(path: Path, nc: int, depth: float, width: float) -> Path:
    """The yolov8 detection yaml with one custom scale; the name makes ultralytics pick it."""
    import yaml
    from ultralytics.nn.tasks import yaml_model_load

    cfg = yaml_model_load("yolov8n.yaml")
    cfg = {k: v for k, v in cfg.items() if k not in {"scale", "yaml_file", "ch"}}
    cfg["nc"] = nc
    cfg["scales"] = {"n": [depth, width, 1024]}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def write_readme(info: dict) -> None:
    names = ", ".join(f"{i}: {n}" for i, n in enumerate(CLASS_NAMES))
    per_class = "\n".join(f"| {n} | {ap50:.3f} | {ap:.3f} |" for n, ap50, ap in info["per_class"])
    text = f"""# Test model: `shapes-yolo.pt`

A small, real YOLO detector (ultralytics {info["ultralytics"]}, YOLOv8 architecture at depth
{DEPTH} / width {WIDTH}, {info["params"]:,} parameters) trained from scratch on synthetic
scenes of coloured shapes from `object_service/synthetic.py`.  The tests use it to run the
object service for real without downloading anything; it knows nothing but these shapes.

This file is written by `scripts/train_test_model.py`.

| | |
|---|---|
| classes (id: name) | {names} |
| dataset seed (train/val) | {SEED} ({info["n_train"]} train / {info["n_val"]} val scenes) |
| held-out seed | {HELDOUT_SEED} ({info["n_heldout"]} scenes) |
| scenes | 640x480, 1-5 shapes of 30-160 px (circumscribed diameter), stored at {IMGSZ} px |
| image size (train and default predict) | {IMGSZ} |
| epochs | {info["epochs"]} (batch {info["batch"]}, CPU, {info["threads"]} threads) |
| training time (measured) | {info["train_min"]:.1f} min training, {info["total_min"]:.1f} min in all, on {info["host"]} |
| held-out mAP50 | **{info["map50"]:.3f}** |
| held-out mAP50-95 | **{info["map"]:.3f}** |
| weights size | {info["size_mb"]:.1f} MB |

Per class on the held-out set:

| class | AP50 | AP50-95 |
|---|---|---|
{per_class}

Retrain (deterministic data; training itself is deterministic up to CPU kernels):

    make test-model        # = python scripts/train_test_model.py

Using it: `ultralytics.YOLO("object_service/models/shapes-yolo.pt")`; `model.names` gives the
classes above.  Shape colours and backgrounds are random in every channel, so the model does
not care whether it is given RGB or BGR.  Set `YOLO_OFFLINE=1`.
"""
    (MODELS_DIR / "README.md").write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="scratch dir for data and runs, emptied first (default: a new /tmp/percept-shapes-*)",
    )
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--n-train", type=int, default=N_TRAIN)
    ap.add_argument("--n-val", type=int, default=N_VAL)
    ap.add_argument("--n-heldout", type=int, default=N_HELDOUT)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr0", type=float, default=0.002)
    ap.add_argument(
        "--no-install", action="store_true", help="do not copy weights/README into the repo"
    )
    args = ap.parse_args()

    t_start = time.time()
    if args.workdir is None:  # a fresh dir: two runs at once must not wipe each other's data
        work = Path(tempfile.mkdtemp(prefix="percept-shapes-"))
    else:
        work = args.workdir.resolve()
        if work == REPO or REPO in work.parents:
            ap.error("--workdir must be outside the repository")
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)

    print(f"generating scenes (seed {SEED}, held-out seed {HELDOUT_SEED}) in {work}", flush=True)
    data = write_yolo_dataset(work / "data", args.n_train, args.n_val, seed=SEED, imgsz=IMGSZ)
    heldout = write_yolo_dataset(
        work / "heldout", 0, args.n_heldout, seed=HELDOUT_SEED, imgsz=IMGSZ
    )
    print(f"  done in {time.time() - t_start:.0f}s", flush=True)

    import torch
    import ultralytics
    from ultralytics import YOLO

    threads = torch.get_num_threads()
    cfg = model_yaml(work / "yolov8n-shapes.yaml", len(CLASS_NAMES), DEPTH, WIDTH)
    model = YOLO(str(cfg), task="detect")
    # What training and the held-out validation share: CPU, in-process data
    # loading, runs under work/, no plots (plotting wants Arial.ttf, which it
    # would download).
    common = dict(
        imgsz=IMGSZ, device="cpu", workers=0, plots=False, project=str(work / "runs"),
        exist_ok=True, verbose=False,
    )  # fmt: skip
    t_train = time.time()
    model.train(
        data=str(data),
        epochs=args.epochs,
        batch=args.batch,
        cache=False,
        name="train",
        pretrained=False,
        amp=False,  # CPU; also skips the AMP check, which downloads yolo11n.pt
        seed=SEED,
        deterministic=True,
        optimizer="AdamW",
        lr0=args.lr0,
        nbs=args.batch,  # no gradient accumulation: a step per batch learns much faster here
        cos_lr=True,
        warmup_epochs=1,
        close_mosaic=3,
        flipud=0.5,
        patience=0,
        **common,
    )
    train_s = time.time() - t_train
    best = work / "runs" / "train" / "weights" / "best.pt"
    print(f"trained in {train_s / 60:.1f} min -> {best}", flush=True)

    trained = YOLO(str(best))
    assert trained.names == dict(enumerate(CLASS_NAMES)), trained.names
    metrics = trained.val(data=str(heldout), split="val", batch=16, name="heldout", **common)
    box = metrics.box
    per_class = [
        (CLASS_NAMES[c], float(box.ap50[i]), float(box.ap[i]))
        for i, c in enumerate(box.ap_class_index)
    ]
    print(f"held-out ({args.n_heldout} scenes, seed {HELDOUT_SEED}):", flush=True)
    print(f"  mAP50    = {box.map50:.4f}")
    print(f"  mAP50-95 = {box.map:.4f}")
    for name, ap50, ap in per_class:
        print(f"  {name:10s} AP50 {ap50:.4f}  AP50-95 {ap:.4f}")

    total_s = time.time() - t_start
    print(f"total {total_s / 60:.1f} min", flush=True)
    if args.no_install:
        return 0
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, WEIGHTS)
    write_readme(
        {
            "ultralytics": ultralytics.__version__,
            "params": sum(p.numel() for p in trained.model.parameters()),
            "n_train": args.n_train,
            "n_val": args.n_val,
            "n_heldout": args.n_heldout,
            "epochs": args.epochs,
            "batch": args.batch,
            "threads": threads,
            "train_min": train_s / 60,
            "total_min": total_s / 60,
            "host": f"{os.cpu_count()} CPU cores",
            "map50": float(box.map50),
            "map": float(box.map),
            "per_class": per_class,
            "size_mb": WEIGHTS.stat().st_size / 1e6,
        }
    )
    print(f"wrote {WEIGHTS.relative_to(REPO)} ({WEIGHTS.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
