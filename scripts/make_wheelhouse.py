"""Fill wheelhouse/ with CPU torch wheels for Dockerfile.object, from a local folder,
for a Docker host that cannot reach PyTorch's CPU index; print the build arguments
that use them (`make images PERCEPT_WHEELHOUSE=DIR` does both).

    python scripts/make_wheelhouse.py /opt/wheels      # -> --build-arg ... lines

DIR must hold a CPU torch wheel (torch-X+cpu-cp311-...whl). torchvision comes from DIR
when it holds a matching CPU build, else from the package indexes pip is configured
with (`pip download`). PyPI's Linux torchvision is built against CUDA torch: its
compiled ops cannot load beside a CPU torch. Then a small wheel built here from
deploy/standins/torchvision_cpu_ops.py goes in too, and the image installs it: it
gives torchvision's NMS a CPU kernel in torch (see that file). Without this script
the image takes torch and torchvision from the CPU index, at constraints.txt's pins.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = ROOT / "wheelhouse"
SHIM = ROOT / "deploy" / "standins" / "torchvision_cpu_ops.py"
SHIM_DIST = "percept_torchvision_cpu_ops"
SHIM_VERSION = "1.0"
PYPI = "https://pypi.org/simple"
TORCH_WHEEL = re.compile(r"torch-(\d+)\.(\d+)\.(\d+)\+cpu-cp311-cp311-\w+\.whl")


def torchvision_for(major: int, minor: int) -> str:
    """The torchvision release paired with torch major.minor (2.13 -> 0.28)."""
    if major != 2:
        raise SystemExit(f"torch {major}.{minor}: only torch 2.x is paired here")
    return f"0.{minor + 15}.0"


def link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_shim_wheel(target_dir: Path) -> Path:
    """A pure-Python wheel: the shim module plus a .pth that imports it at start-up."""
    info = f"{SHIM_DIST}-{SHIM_VERSION}.dist-info"
    files = {
        f"{SHIM_DIST}.py": SHIM.read_bytes(),
        f"{SHIM_DIST}.pth": f"import {SHIM_DIST}\n".encode(),
        f"{info}/METADATA": (
            "Metadata-Version: 2.1\n"
            f"Name: {SHIM_DIST.replace('_', '-')}\n"
            f"Version: {SHIM_VERSION}\n"
            "Summary: CPU NMS for a torchvision whose compiled ops cannot load (Percept stand-in)\n"
        ).encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: percept make_wheelhouse\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [record_line(name, data) for name, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = target_dir / f"{SHIM_DIST}-{SHIM_VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            wheel.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a folder holding a CPU torch wheel")
    args = parser.parse_args()
    wheels = sorted(p for p in args.source.glob("torch-*.whl") if TORCH_WHEEL.fullmatch(p.name))
    if not wheels:
        print(f"no CPU torch wheel (torch-X+cpu-cp311-*.whl) in {args.source}", file=sys.stderr)
        return 2
    torch_wheel = wheels[-1]
    major, minor, patch = (int(g) for g in TORCH_WHEEL.fullmatch(torch_wheel.name).groups())
    torch_version = f"{major}.{minor}.{patch}+cpu"
    vision_version = torchvision_for(major, minor)
    WHEELHOUSE.mkdir(exist_ok=True)
    for stale in WHEELHOUSE.glob("*.whl"):
        stale.unlink()
    link_or_copy(torch_wheel, WHEELHOUSE / torch_wheel.name)
    extras = ""
    cpu_vision = sorted(args.source.glob(f"torchvision-{vision_version}+cpu-cp311-*.whl"))
    if cpu_vision:
        link_or_copy(cpu_vision[-1], WHEELHOUSE / cpu_vision[-1].name)
        vision_version += "+cpu"
    else:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
            + ["--only-binary", ":all:", "--dest", str(WHEELHOUSE)]
            + ["--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"]
            + [f"torchvision=={vision_version}"],
            check=True,
        )
        build_shim_wheel(WHEELHOUSE)
        extras = SHIM_DIST.replace("_", "-")
    for name, value in (
        ("TORCH_INDEX_URL", PYPI),
        ("TORCH_VERSION", torch_version),
        ("TORCHVISION_VERSION", vision_version),
        ("WHEELHOUSE_EXTRAS", extras),
    ):
        print(f"--build-arg {name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
