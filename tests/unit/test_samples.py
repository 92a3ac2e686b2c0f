"""`make samples`: the files the README's examples name exist, and writing them
is idempotent (only missing files are written)."""

from __future__ import annotations

import importlib.util
import re

import cv2
import pytest

from tests.support import ROOT, code_blocks, readme_section

spec = importlib.util.spec_from_file_location("make_samples", ROOT / "scripts" / "make_samples.py")
make_samples = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_samples)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    dest = tmp_path_factory.mktemp("samples")
    return dest, make_samples.ensure_samples(dest)


def test_every_sample_is_a_readable_image_or_video(samples):
    dest, paths = samples
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in paths)
    for path in paths:
        if path.suffix == ".avi":
            video = cv2.VideoCapture(str(path))
            count = 0
            while video.read()[0]:
                count += 1
            assert count == make_samples.N_FRAMES, path
        else:
            image = cv2.imread(str(path))
            assert image is not None and min(image.shape[:2]) >= 400, path


def test_only_missing_files_are_written(samples):
    dest, paths = samples
    before = {p.name: p.stat().st_mtime_ns for p in paths}
    (dest / "door.jpg").unlink()
    again = make_samples.ensure_samples(dest)
    assert again == paths and (dest / "door.jpg").is_file()
    after = {p.name: p.stat().st_mtime_ns for p in again}
    assert {n for n in before if before[n] != after[n]} == {"door.jpg"}
    assert not list(dest.glob(".partial-*"))


def test_the_readme_examples_read_only_files_that_ship():
    sections = ("## Quick start", "### Python SDK and the `percept` command line", "### grpcurl")
    code = "".join(
        block
        for heading in sections
        for lang in ("python", "sh")
        for block in code_blocks(readme_section(heading), lang)
    )
    code = re.sub(r"--draw \S+", "", code)  # a file the example writes
    files = re.findall(r"[\w./-]+\.(?:jpg|jpeg|png|webp|mp4|avi)\b", code)
    assert files and all(f.startswith("samples/") for f in files), files
    assert {f.removeprefix("samples/") for f in files} <= set(make_samples.SAMPLES), files
