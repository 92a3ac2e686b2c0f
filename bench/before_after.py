"""Before and after: this tree against a base revision, side by side in one run
on the same machine, so a change's cost shows as a ratio and not as a
comparison of two days' noise.

The base revision (default 3f8bf07, the tree before issue 16) is exported with
`git archive` into a directory of its own (kept for the next run; the repository
is only read) and runs on this venv. Each side starts its own face replica,
object replica (the demo model) and two gateways, one without dispatchers
(submits only) and one with them, on Redis databases of its own. Rounds
alternate the sides (the base first in odd rounds, this tree in even ones);
each figure is the median of its rounds, with its range:

1. submit latency: POST /api/detect/object/image answered 202 (zidane.jpg,
   dispatchers off, `--clients` keep-alive clients): p50 and p95;
2. tiny-task rate: 32x32 images through /api/detect/object/image?wait=true,
   `--concurrency` clients over a timed window: tasks/s end to end;
3. identify latency: /api/identify/face/image?wait=true, the astronaut's head
   (160x170) against a collection of three people (harness.faces), one client:
   p50 and p95.

python -m bench.before_after [--base REV] [--rounds N]   (make bench-before-after BASE=REV)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import redis

from bench import http_load
from bench.gateway_bench import submit_latencies, zidane
from harness import faces
from harness.images import encode
from harness.processes import ROOT, GatewayProcess, ServerProcess

BASE = "3f8bf07"
HOST = "127.0.0.1"
OBJECT_PATH = "/api/detect/object/image"
IDENTIFY_PATH = "/api/identify/face/image"
COLLECTION = "before-after"
DEMO_MODEL = Path("object_service") / "models" / "shapes-yolo.pt"
ONNX_CACHE = Path(tempfile.gettempdir()) / "percept-before-after-onnx"


def export(rev: str) -> Path:
    """The tree of `rev`, exported once into the temporary directory."""
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    dest = Path(tempfile.gettempdir()) / f"percept-base-{sha[:12]}"
    if not (dest / ".exported").exists():
        subprocess.run(["rm", "-rf", str(dest)], check=True)
        dest.mkdir(parents=True)
        archive = subprocess.Popen(["git", "archive", sha], cwd=ROOT, stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
        assert archive.wait() == 0, "git archive failed"
        (dest / ".exported").write_text(sha + "\n")
    return dest


@dataclass
class Side:
    """One tree's stack: replicas, a submit-only gateway and a full one."""

    name: str
    root: Path
    redis_base: str
    dbs: tuple[int, int]
    processes: list[ServerProcess] = field(default_factory=list)

    def start(self, gallery_dir: Path) -> Side:
        def started(cls, module: str, env: dict[str, str]) -> ServerProcess:
            process = cls(module, env=env, root=self.root).start()
            self.processes.append(process)
            return process

        self.face = started(ServerProcess, "face_service", {
            "FACE_WORKERS": "1",
            "FACE_GALLERY_URL": f"sqlite:///{gallery_dir / f'{self.name}.sqlite3'}",
        })  # fmt: skip
        self.object = started(ServerProcess, "object_service", {
            "OBJECT_WORKERS": "1",
            "OBJECT_MODEL": str(self.root / DEMO_MODEL),
            "OBJECT_CACHE_DIR": str(ONNX_CACHE),
        })  # fmt: skip
        env = {
            "GATEWAY_AUTH": "disabled",  # no key to make: the two trees' key stores may differ
            "GATEWAY_FACE_TARGETS": self.face.address,
            "GATEWAY_OBJECT_TARGETS": self.object.address,
        }
        self.submit_url, full_url = (f"{self.redis_base}/{db}" for db in self.dbs)
        for url in (self.submit_url, full_url):
            redis.Redis.from_url(url).flushdb()
        self.api = started(GatewayProcess, "gateway", {
            **env, "REDIS_URL": self.submit_url, "GATEWAY_DISPATCHERS": "false",
        })  # fmt: skip
        self.gateway = started(GatewayProcess, "gateway", {**env, "REDIS_URL": full_url})
        return self

    def enroll(self) -> None:
        """The collection identify reads: three people, one photo each."""
        with httpx.Client(base_url=self.gateway.url, timeout=120) as http:
            made = http.post("/api/collections", json={"collection_id": COLLECTION})
            assert made.status_code == 201, made.text
            for person, photo in faces.photos().items():
                enrolled = http.post(
                    f"/api/collections/{COLLECTION}/faces",
                    files={"file": ("p.jpg", faces.encode(photo.rgb), "image/jpeg")},
                    data={"subject": person},
                )
                assert enrolled.status_code == 201, enrolled.text

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        for db in self.dbs:
            redis.Redis.from_url(f"{self.redis_base}/{db}").flushdb()


def quantile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


def measure(side: Side, args, upload: bytes, tiny: bytes, probe: bytes) -> dict[str, float]:
    """One round of the three figures on one side."""
    redis.Redis.from_url(side.submit_url).flushdb()  # nothing runs them: keep the queue short
    submits = asyncio.run(
        submit_latencies(HOST, side.api.port, upload, args.submits, args.clients, {}, OBJECT_PATH)
    )
    port = side.gateway.port
    window = asyncio.run(
        http_load.closed_loop(
            HOST, port,
            http_load.simple_mode(http_load.upload_request(HOST, port, OBJECT_PATH, tiny, "wait=true")),
            args.concurrency, warmup_s=1.0, seconds=args.seconds,
        )
    )  # fmt: skip
    assert not window.failures, window.failures[:3]
    identify = http_load.upload_request(
        HOST, port, IDENTIFY_PATH, probe, f"collection_id={COLLECTION}&wait=true"
    )
    identified = asyncio.run(http_load.round_trips(HOST, port, identify, args.identifies, 5))
    return {
        "submit p50": quantile(submits, 50) * 1000,
        "submit p95": quantile(submits, 95) * 1000,
        "tiny tasks": window.rate,
        "identify p50": quantile(identified, 50) * 1000,
        "identify p95": quantile(identified, 95) * 1000,
    }


FIGURES = {  # name: (unit, what the line says, True when higher is better)
    "submit p50": ("ms", "1. submit latency (object image -> 202), p50", False),
    "submit p95": ("ms", "   submit latency, p95", False),
    "tiny tasks": ("tasks/s", "2. tiny-task rate (32x32, ?wait=true), end to end", True),
    "identify p50": ("ms", "3. identify latency (3-person collection), p50", False),
    "identify p95": ("ms", "   identify latency, p95", False),
}


def report(rounds: dict[str, list[dict[str, float]]], base_name: str) -> None:
    print(
        f"\n{'figure (median of the rounds, their range)':<52} {base_name:>20} {'this tree':>20}  this/base"
    )
    for key, (unit, label, higher_better) in FIGURES.items():
        cells, medians = [], []
        for name in ("base", "ours"):
            values = [r[key] for r in rounds[name]]
            medians.append(statistics.median(values))
            cells.append(f"{medians[-1]:7.2f} ({min(values):.1f}-{max(values):.1f})")
        ratio = medians[1] / medians[0]
        better = "higher" if higher_better else "lower"
        print(
            f"{label:<52} {cells[0]:>18} {cells[1]:>18}  {ratio:5.2f}x {unit}, {better} is better"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default=BASE, help="the revision to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--submits", type=int, default=400, help="uploads per round")
    parser.add_argument("--clients", type=int, default=4, help="submit clients")
    parser.add_argument("--concurrency", type=int, default=8, help="tiny-task clients")
    parser.add_argument("--seconds", type=float, default=5.0, help="tiny-task window")
    parser.add_argument("--identifies", type=int, default=30, help="identify calls per round")
    args = parser.parse_args()
    redis_base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    base_root = export(args.base)
    upload = zidane()
    tiny = encode(np.full((32, 32, 3), (90, 140, 60), np.uint8), ".jpg")
    probe = faces.encode(np.ascontiguousarray(faces.photos()["astronaut"].rgb[faces.FACE_PATCH]))
    print(
        f"before/after: {args.base} ({base_root}) vs this tree ({ROOT}); {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds, sides alternating",
        flush=True,
    )
    sides = [
        Side("base", base_root, redis_base, (10, 11)),
        Side("ours", ROOT, redis_base, (12, 13)),
    ]
    rounds: dict[str, list[dict[str, float]]] = {"base": [], "ours": []}
    with tempfile.TemporaryDirectory(prefix="percept-before-after-") as galleries:
        try:
            for side in sides:
                side.start(Path(galleries)).enroll()
            for i in range(args.rounds):
                for side in sides if i % 2 == 0 else reversed(sides):
                    figures = measure(side, args, upload, tiny, probe)
                    rounds[side.name].append(figures)
                    shown = ", ".join(f"{k} {v:.2f}" for k, v in figures.items())
                    print(f"round {i + 1}, {side.name}: {shown}", flush=True)
        finally:
            for side in sides:
                side.stop()
    report(rounds, args.base)
    print(f"(load average at the end {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
