"""Sample files for the README's examples, built from images that installed
packages ship (ultralytics' bus.jpg, matplotlib's grace_hopper.jpg,
scikit-image's astronaut.png) and from the synthetic shapes the demo object
model was trained on. `make samples` writes them into samples/ (git-ignored);
`make run` does too. Only missing files are written, so it is fast and
idempotent.

- people.jpg   a street: four people, two faces turned to the camera (bus.jpg)
- grace-1.jpg  Grace Hopper, for enrolling
- grace-2.jpg  the same photo mirrored and relit: a second photo to enroll
- door.jpg     Grace Hopper (resized, darker) beside Zinedine Zidane: one known face, one unknown
- visitor.jpg  Eileen Collins (scikit-image's astronaut): not Grace Hopper
- faces.avi    Grace Hopper's head moving across a plain background, 12 frames
- shapes.png   a circle and a square on a textured background: what the demo model knows
- shapes.avi   the two shapes moving, 12 frames

python scripts/make_samples.py [DEST]   (default: samples/ at the repository root)
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N_FRAMES = 12


def _package_dir(name: str) -> Path:
    """Where an installed package lives, without importing it (ultralytics imports torch)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the package {name!r} is not installed; run `make setup`")
    return Path(next(iter(spec.submodule_search_locations)))


def _read_rgb(path: Path):
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError(f"cannot read the packaged image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _write_rgb(path: Path, rgb) -> None:
    import cv2

    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise RuntimeError(f"cannot write {path}")


def _grace():
    return _read_rgb(_package_dir("matplotlib") / "mpl-data" / "sample_data" / "grace_hopper.jpg")


def _relit(rgb, gain: float, offset: float):
    import numpy as np

    return np.clip(rgb.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def _people(path: Path) -> None:
    path.write_bytes((_package_dir("ultralytics") / "assets" / "bus.jpg").read_bytes())


def _grace_1(path: Path) -> None:
    _write_rgb(path, _grace())


def _grace_2(path: Path) -> None:
    import numpy as np

    _write_rgb(path, _relit(np.ascontiguousarray(_grace()[:, ::-1]), 0.8, 20))


def _door(path: Path) -> None:
    import cv2
    import numpy as np

    grace = cv2.resize(_relit(_grace(), 0.85, -10), (435, 510), interpolation=cv2.INTER_AREA)
    zidane = _read_rgb(_package_dir("ultralytics") / "assets" / "zidane.jpg")[20:530, 780:1200]
    canvas = np.full((510, 435 + 420, 3), 40, np.uint8)
    canvas[:, :435] = grace
    canvas[:, 435:] = zidane
    _write_rgb(path, canvas)


def _visitor(path: Path) -> None:
    path.write_bytes((_package_dir("skimage") / "data" / "astronaut.png").read_bytes())


def _faces_video(path: Path) -> None:
    import numpy as np

    from harness.videos import moving_patch_video

    head = np.ascontiguousarray(_grace()[90:380, 130:410])
    moving_patch_video(path, head, n_frames=N_FRAMES, step=(20, 8))


def _shapes_video(path: Path) -> None:
    from harness.videos import moving_shapes_video

    moving_shapes_video(path, n_frames=N_FRAMES)


def _shapes_image(path: Path) -> None:
    from harness.videos import moving_shapes_video, read_frames

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "shapes.avi"
        moving_shapes_video(video, n_frames=1)
        _write_rgb(path, read_frames(video)[0])


SAMPLES: dict[str, Callable[[Path], None]] = {
    "people.jpg": _people,
    "grace-1.jpg": _grace_1,
    "grace-2.jpg": _grace_2,
    "door.jpg": _door,
    "visitor.jpg": _visitor,
    "faces.avi": _faces_video,
    "shapes.png": _shapes_image,
    "shapes.avi": _shapes_video,
}


def ensure_samples(dest: Path) -> list[Path]:
    """Write the sample files missing from `dest` (made if needed); return every sample's path.

    Each file is written under a temporary name and renamed, so an interrupted
    run never leaves a half-written sample that a later run would keep.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # harness.videos draws the videos
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in SAMPLES.items():
        path = dest / name
        if not path.is_file():
            partial = path.with_name(f".partial-{path.name}")
            make(partial)
            partial.replace(path)
        paths.append(path)
    return paths


def main(argv: list[str]) -> int:
    dest = Path(argv[1]) if len(argv) > 1 else ROOT / "samples"
    for path in ensure_samples(dest):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
