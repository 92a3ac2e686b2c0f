"""Live sources without servers: the URL policy (SSRF refusals on the address,
without connecting), credential masking, the rules on tracked boxes, and the
workers' share of the sources."""

from __future__ import annotations

import pytest

from gateway.sources import (
    SourceChange,
    SourcePolicy,
    Zone,
    address_problem,
    check_url,
    masked,
)
from percept_runtime.errors import InvalidInput
from source_worker.rules import Box, Rules
from source_worker.worker import preferred


@pytest.mark.parametrize(
    ("ip", "what"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.10", "private"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "private"),  # v4-mapped is unwrapped
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("fc00::5", "private"),
    ],
)
def test_private_and_local_addresses_are_refused(ip, what):
    problem = address_problem(ip)
    assert problem is not None and what in problem


def test_public_addresses_pass_and_allowed_networks_open_private_ones():
    assert address_problem("93.184.216.34") is None
    assert address_problem("2606:4700::1111") is None
    loopback = SourcePolicy(allow_networks="127.0.0.0/8").networks
    assert address_problem("127.0.0.1", loopback) is None
    assert "private" in address_problem("10.0.0.1", loopback)


def test_urls_by_scheme_and_address():
    policy = SourcePolicy(allow_networks="")
    with pytest.raises(InvalidInput, match="scheme 'ftp' is not accepted: use one of file, http"):
        check_url("ftp://example.com/x", policy)
    with pytest.raises(InvalidInput, match="link-local"):
        check_url("http://169.254.169.254/latest/meta-data", policy)
    with pytest.raises(InvalidInput, match="loopback"):
        check_url("rtsp://user:pw@127.0.0.1:8554/cam", policy)
    with pytest.raises(InvalidInput, match="no host"):
        check_url("rtsp:///cam", policy)
    with pytest.raises(InvalidInput, match="scheme"):
        check_url(
            "rtsp://127.0.0.1/x", SourcePolicy(schemes="http,https", allow_networks="127.0.0.0/8")
        )
    assert check_url("rtsp://127.0.0.1:8554/cam", SourcePolicy(allow_networks="127.0.0.0/8"))


def test_files_only_inside_the_allowed_directories(tmp_path):
    inside = tmp_path / "ok"
    inside.mkdir()
    clip = inside / "clip.avi"
    clip.write_bytes(b"x")
    (tmp_path / "secret.avi").write_bytes(b"x")
    policy = SourcePolicy(file_dirs=str(inside))
    assert check_url(str(clip), policy) == str(clip)
    assert check_url(f"file://{clip}", policy) == str(clip)
    with pytest.raises(InvalidInput, match="outside the allowed directories"):
        check_url(f"{inside}/../secret.avi", policy)
    with pytest.raises(InvalidInput, match="does not exist"):
        check_url(f"{inside}/missing.avi", policy)
    with pytest.raises(InvalidInput, match="file sources are off"):
        check_url(str(clip), SourcePolicy(file_dirs=""))


def test_credentials_are_masked():
    assert (
        masked("rtsp://admin:hunter2@cam.example/stream") == "rtsp://admin:***@cam.example/stream"
    )
    assert (
        masked("https://token@cam.example/live.m3u8?x=1") == "https://***@cam.example/live.m3u8?x=1"
    )
    assert masked("rtsp://cam.example/stream") == "rtsp://cam.example/stream"


def test_rule_shapes_are_checked():
    with pytest.raises(ValueError, match="at least 3"):
        Zone(id="z", polygon=[(0, 0), (1, 1)])
    with pytest.raises(ValueError, match="not a valid id"):
        Zone(id="..", polygon=[(0, 0), (1, 1), (1, 0)])
    assert SourceChange(max_fps=2).model_dump(exclude_unset=True) == {"max_fps": 2}


def _walk(rules: Rules, xs, track_id=7, t0=0.0, fps=10.0):
    events = []
    for i, x in enumerate(xs):
        box = Box(track_id, "circle", x - 40, 200, x + 40, 280)
        events += rules.update([box], t0 + i / fps)
    return events


def test_line_crossings_count_once_each_way_and_ignore_jitter():
    rules = Rules(lines=[{"id": "door", "start": [320, 0], "end": [320, 480]}])
    xs = [100 + 22 * i for i in range(20)]  # right: "in"
    xs += [316 if i % 2 else 324 for i in range(20)][::-1]  # jitter on the line
    xs += [300 - 20 * i for i in range(10)]  # left: "out"
    crossings = [e.data["direction"] for e in _walk(rules, xs) if e.type == "line.crossed"]
    assert crossings == ["in", "out"]
    assert rules.counts == {"door:in": 1, "door:out": 1}


def test_dwell_time_and_track_summary():
    rules = Rules(
        zones=[{"id": "shelf", "polygon": [[400, 0], [640, 0], [640, 480], [400, 480]]}],
        end_after_s=1.0,
    )
    xs = [300.0] * 5 + [500.0] * 23 + [300.0] * 5  # in the zone for 23 frames at 10 fps
    events = _walk(rules, xs)
    left = [e for e in events if e.type == "zone.left"]
    assert [e.data["dwell_s"] for e in left] == [2.3]
    ended = rules.expire(100.0)
    assert ended[-1].type == "track.ended"
    assert ended[-1].data["zones"] == ["shelf"] and ended[-1].data["frames"] == 33


def test_class_filters_and_untracked_boxes():
    rules = Rules(lines=[{"id": "l", "start": [320, 0], "end": [320, 480], "classes": ["square"]}])
    xs = [100 + 22 * i for i in range(20)]
    assert not [e for e in _walk(rules, xs) if e.type == "line.crossed"]  # a circle
    untracked = Rules(lines=[{"id": "l", "start": [320, 0], "end": [320, 480]}])
    assert _walk(untracked, xs, track_id=0) == []


def test_every_source_has_one_preferred_worker_and_shares_spread():
    workers = ["w1", "w2", "w3"]
    owners = [preferred(f"src_{i}", workers) for i in range(300)]
    assert all(o in workers for o in owners)
    assert min(owners.count(w) for w in workers) > 60  # roughly a third each
    # A worker leaving moves only its own sources.
    moved = [
        i
        for i in range(300)
        if owners[i] != "w3" and preferred(f"src_{i}", ["w1", "w2"]) != owners[i]
    ]
    assert moved == []
