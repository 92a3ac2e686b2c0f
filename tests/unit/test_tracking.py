"""The tracker core (percept_runtime/tracking.py) on synthetic detections and on
the pedestrian ground truth that ships inside motmetrics. No servers."""

from __future__ import annotations

import motmetrics
import numpy as np
import pytest

from percept_runtime.tracking import Scene, SceneLog, Tracker, TrackerConfig
from tests.tracking_support import TUD_SEQUENCES, accumulate, score, score_tud


def synthetic_scene(seed: int, n_objects: int = 20, n_frames: int = 120):
    """Boxes that cross, occlude each other (a hidden object is not detected),
    leave and come back within the keep time, at varying speeds; some
    detections dropped. frame -> [(true id, box)]."""
    rng = np.random.default_rng(seed)
    frames: dict[int, list[tuple[int, np.ndarray]]] = {f: [] for f in range(n_frames)}
    for oid in range(1, n_objects + 1):
        size = rng.uniform(30, 60)
        start = rng.uniform([0, 0], [600, 400])
        velocity = rng.uniform(-4, 4, 2)
        gap = rng.integers(20, 90)  # frames it is away (left, behind something)
        gap_len = rng.integers(0, 15)
        speeds = 1.0 + 0.5 * np.sin(np.arange(n_frames) / 10 + oid)  # speeds up, slows down
        travelled = np.cumsum(speeds)
        for f in range(n_frames):
            pos = start + velocity * travelled[f]
            if gap <= f < gap + gap_len or rng.random() < 0.05:
                continue
            frames[f].append((oid, np.array([*pos, *(pos + size)])))
    return frames


def track_scene(frames, config: TrackerConfig):
    acc = motmetrics.MOTAccumulator(auto_id=True)
    with Tracker(config) as tracker:
        for f in sorted(frames):
            truth = frames[f]
            boxes = np.array([b for _, b in truth]).reshape(-1, 4)
            scores = np.full(len(truth), 0.9)
            ids = tracker.update(boxes, scores, np.zeros(len(truth)))
            kept = [i for i, t in enumerate(ids) if t]
            accumulate(acc, [o for o, _ in truth], boxes, [ids[i] for i in kept], boxes[kept])
    return score(acc)


@pytest.mark.parametrize("kind", ["bytetrack", "botsort"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_synthetic_crossings_keep_their_ids(kind, seed):
    result = track_scene(synthetic_scene(seed), TrackerConfig(kind=kind))
    assert result["idf1"] >= 0.95, result
    assert result["switches"] <= max(1, result["tracks"] // 20), result


def test_a_track_lost_longer_than_the_keep_time_gets_a_new_id():
    box = np.array([[10.0, 10.0, 50.0, 50.0]])
    with Tracker(TrackerConfig(lost_track_frames=5)) as tracker:
        first = tracker.update(box, [0.9], [0])[0]
        for _ in range(3):
            tracker.update(np.empty((0, 4)), [], [])
        assert tracker.update(box, [0.9], [0])[0] == first  # back within 5 frames
        for _ in range(10):
            tracker.update(np.empty((0, 4)), [], [])
        tracker.update(box, [0.9], [0])
        later = tracker.update(box, [0.9], [0])[0]
        assert later and later != first


@pytest.mark.parametrize("name", TUD_SEQUENCES)
def test_tud_pedestrians_regression_floor(name):
    """Ground-truth boxes with jitter, 10% dropped and false positives (fixed
    seed): the README reports these figures; this keeps them from sliding."""
    result = score_tud(name)
    assert result["idf1"] >= 0.90, result
    assert result["mota"] >= 0.85, result


def test_ids_of_two_trackers_never_meet_and_off_gives_none():
    box = np.array([[10.0, 10.0, 50.0, 50.0]])
    with Tracker(TrackerConfig()) as a, Tracker(TrackerConfig()) as b:
        ids_a = {a.update(box + i, [0.9], [0])[0] for i in range(5)}
        ids_b = {b.update(box + i, [0.9], [0])[0] for i in range(5)}
        assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b
        assert 0 not in ids_a | ids_b
    with Tracker(TrackerConfig(kind="off")) as off:
        assert off.update(box, [0.9], [0]) == [0]


def test_a_new_object_gets_its_id_from_its_second_frame_and_low_scores_none():
    a = np.array([[10.0, 10.0, 50.0, 50.0]])
    both = np.array([[10.0, 10.0, 50.0, 50.0], [200.0, 10.0, 240.0, 50.0]])
    with Tracker(TrackerConfig()) as tracker:
        first = tracker.update(a, [0.9], [0])[0]
        assert first  # the first frame's tracks are confirmed at once
        ids = tracker.update(both, [0.9, 0.9], [0, 1])
        assert ids == [first, 0]
        ids = tracker.update(both, [0.9, 0.9], [0, 1])
        assert ids[0] == first and ids[1] not in (0, first)
        assert tracker.update(np.array([[400.0, 400, 440, 440]]), [0.05], [0]) == [0]


def test_scene_log_votes_the_class_and_keeps_the_best_observation():
    log = SceneLog()
    for frame, (cls, conf) in enumerate([(1, 0.5), (2, 0.9), (1, 0.6), (1, 0.4)]):
        log.observe(7, frame, frame / 10, (frame, 0, frame + 5, 5), conf, cls)
    log.observe(0, 9, 0.9, (0, 0, 1, 1), 1.0)  # untracked: not a track
    (record,) = log.summary()
    assert (record.track_id, record.first_frame, record.last_frame) == (7, 0, 3)
    assert record.frames_seen == 4 and record.class_id == 1
    assert record.best_frame == 1 and record.best_box == (1, 0, 6, 5)
    assert record.last_time == pytest.approx(0.3)


def test_a_replica_without_ultralytics_answers_untracked(monkeypatch):
    from percept_runtime import tracking

    monkeypatch.setattr(tracking, "_available", False)
    with Scene(TrackerConfig()) as scene:
        assert not scene.enabled
        assert scene.tracker.update(np.array([[1.0, 1, 9, 9]]), [0.9], [0]) == [0]
