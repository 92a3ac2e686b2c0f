"""Scoring trackers with motmetrics (test code only), and the ground truth it ships.

motmetrics 1.4.0 still calls np.asfarray, gone in NumPy 2: the shim below puts
it back before the import, here and nowhere in the product.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

if not hasattr(np, "asfarray"):
    np.asfarray = lambda a, dtype=float: np.asarray(a, dtype=dtype)

import motmetrics  # noqa: E402

from percept_runtime.tracking import Tracker, TrackerConfig  # noqa: E402

TUD_SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")


def tud_ground_truth(name: str) -> dict[int, list[tuple[int, np.ndarray]]]:
    """frame -> [(person id, box left, top, right, bottom)] from the MOT gt.txt
    that ships inside the motmetrics package."""
    path = Path(motmetrics.__file__).parent / "data" / name / "gt.txt"
    frames: dict[int, list[tuple[int, np.ndarray]]] = {}
    for line in path.read_text().splitlines():
        f, pid, x, y, w, h = (float(v) for v in line.split(",")[:6])
        frames.setdefault(int(f), []).append((int(pid), np.array([x, y, x + w, y + h])))
    return frames


def noisy_detections(
    truth: dict[int, list[tuple[int, np.ndarray]]],
    seed: int = 0,
    *,
    jitter: float = 0.05,
    drop: float = 0.10,
    false_positives: float = 0.05,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """A detector's view of the truth: each box jittered (a fraction of its size),
    `drop` of them missed, a false positive in `false_positives` of frames,
    scores between 0.5 and 1 (false positives lower)."""
    rng = np.random.default_rng(seed)
    out = {}
    for frame in range(1, max(truth) + 1):
        boxes, scores = [], []
        for _pid, box in truth.get(frame, []):
            if rng.random() < drop:
                continue
            w, h = box[2] - box[0], box[3] - box[1]
            boxes.append(box + rng.normal(0, jitter, 4) * np.array([w, h, w, h]))
            scores.append(rng.uniform(0.5, 1.0))
        if rng.random() < false_positives:
            x, y = rng.uniform(0, 500), rng.uniform(0, 300)
            boxes.append(np.array([x, y, x + 60, y + 150]))
            scores.append(rng.uniform(0.3, 0.6))
        out[frame] = (np.array(boxes).reshape(-1, 4), np.array(scores))
    return out


def score(accumulator: motmetrics.MOTAccumulator) -> dict[str, float]:
    """IDF1, MOTA, identity switches and the number of true tracks."""
    mh = motmetrics.metrics.create()
    summary = mh.compute(
        accumulator, metrics=["idf1", "mota", "num_switches", "num_unique_objects"], name="x"
    )
    row = summary.loc["x"]
    return {
        "idf1": float(row["idf1"]),
        "mota": float(row["mota"]),
        "switches": int(row["num_switches"]),
        "tracks": int(row["num_unique_objects"]),
    }


def accumulate(accumulator, truth_ids, truth_boxes, track_ids, track_boxes) -> None:
    """Add one frame: boxes are left, top, right, bottom; matched at IoU >= 0.5."""

    def tlwh(b):
        b = np.asarray(b, dtype=float).reshape(-1, 4)
        return np.column_stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]])

    distances = motmetrics.distances.iou_matrix(tlwh(truth_boxes), tlwh(track_boxes), max_iou=0.5)
    accumulator.update(list(truth_ids), list(track_ids), distances)


def score_tud(name: str, config: TrackerConfig | None = None, seed: int = 0) -> dict[str, float]:
    """Feed a TUD sequence's noisy detections to the tracker and score it."""
    truth = tud_ground_truth(name)
    detections = noisy_detections(truth, seed)
    acc = motmetrics.MOTAccumulator(auto_id=True)
    with Tracker(config or TrackerConfig()) as tracker:
        for frame in range(1, max(truth) + 1):
            boxes, scores = detections[frame]
            ids = tracker.update(boxes, scores, np.zeros(len(scores)))
            kept = [i for i, t in enumerate(ids) if t]
            gt = truth.get(frame, [])
            accumulate(
                acc, [p for p, _ in gt], [b for _, b in gt],
                [ids[i] for i in kept], boxes[kept],
            )  # fmt: skip
    return score(acc)
