"""Memory of a `make run` stack: the RSS (and USS, the pages only that process
holds) of every process, after a few calls of each kind, as the README states it.

Starts scripts/run_stack.py as `make run` does (its own Redis, auth on) in a
temporary run directory on free ports, sends CALLS calls of each kind through
the SDK (face image, face video, identification, object image, object video,
enroll) with the samples of `make samples`, then reads every process of the
stack and stops it.

python -m bench.stack_memory [--calls N] [--face-replicas N] [--object-replicas M]
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from harness.processes import ROOT, free_port

MIB = 1024 * 1024


def role(proc: psutil.Process) -> str:
    """What a process of the stack is, from its command line and its parent's."""
    cmd = " ".join(proc.cmdline())
    for module, name in (("face_service", "face"), ("object_service", "object")):
        if f"-m {module}" in cmd:
            return f"{name} server"
    if "-m gateway" in cmd:
        return "gateway"
    if "redis-server" in cmd:
        return "redis"
    if "run_stack.py" in cmd:
        return "launcher (run_stack.py)"
    parent = proc.parent()
    above = role(parent) if parent else "?"
    if "resource_tracker" in cmd:
        return f"{above.split()[0]} resource tracker"
    if above.endswith("server"):
        return f"{above.split()[0]} worker"
    return f"{above} child"


def exercise(url: str, key: str, samples: Path, calls: int) -> None:
    import percept

    with percept.Client(url, api_key=key, wait_timeout=600) as client:
        client.create_collection("bench-memory", exist_ok=True)
        for _ in range(calls):
            client.detect_faces(samples / "people.jpg", landmarks=True)
            client.detect_objects(samples / "shapes.png")
            client.enroll("bench-memory", samples / "grace-1.jpg", "grace")
            client.identify(samples / "door.jpg", "bench-memory")
            list(client.detect_faces_in_video(samples / "faces.avi"))
            list(client.detect_objects_in_video(samples / "shapes.avi"))
            list(client.identify_in_video(samples / "faces.avi", "bench-memory"))
        client.delete_collection("bench-memory")


def large_photos(url: str, key: str, source: Path, big: Path, calls: int) -> None:
    """Face detection on a 3.5-MP photo: a face worker's memory grows with the pixels it scans."""
    import cv2
    import percept

    image = cv2.imread(str(source))
    cv2.imwrite(str(big), cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC))
    with percept.Client(url, api_key=key, wait_timeout=600) as client:
        for _ in range(calls * 2):  # every worker gets some
            client.detect_faces(big)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3, help="calls of each kind")
    parser.add_argument("--face-replicas", type=int, default=1)
    parser.add_argument("--object-replicas", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_samples import ensure_samples

    samples = ROOT / "samples"
    ensure_samples(samples)
    with tempfile.TemporaryDirectory(prefix="percept-memory-") as tmp:
        port = free_port()
        env = {**os.environ, "PERCEPT_RUN_DIR": tmp, "GATEWAY_PORT": str(port)}
        for name in ("REDIS_URL", "GATEWAY_AUTH"):
            env.pop(name, None)  # as `make run` runs by default: its own Redis, auth on
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "run_stack.py"),
             "--face-replicas", str(args.face_replicas),
             "--object-replicas", str(args.object_replicas)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
        try:
            deadline = time.monotonic() + 900
            while True:
                line = lines.get(timeout=max(1, deadline - time.monotonic()))
                if "[percept] ready" in line:
                    break
                if proc.poll() is not None:
                    raise SystemExit(f"the stack exited: {line}")
            key = (Path(tmp) / "admin.key").read_text().strip()
            url = f"http://127.0.0.1:{port}"
            started = time.perf_counter()
            exercise(url, key, samples, args.calls)
            spent = time.perf_counter() - started
            print(f"after {args.calls} call(s) of each kind on the samples ({spent:.0f} s)")
            report(proc.pid)
            big = Path(tmp) / "people-3.5mp.jpg"
            large_photos(url, key, samples / "people.jpg", big, args.calls)
            print(f"\nthen {args.calls} face detections of {big.name} (1620x2160)")
            report(proc.pid, only="face worker")
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(120)
    return 0


def report(launcher: int, only: str | None = None) -> None:
    sid = os.getsid(launcher)
    rows = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) != sid:
                continue
            name = role(proc)
            if only and name != only:
                continue
            info = proc.memory_full_info()
            rows.append((name, proc.pid, info.rss / MIB, info.uss / MIB))
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    rows.sort()
    print(f"cores: {os.cpu_count()}")
    print(f"{'process':<28}{'pid':>8}{'RSS MiB':>10}{'USS MiB':>10}")
    for name, pid, rss, uss in rows:
        print(f"{name:<28}{pid:>8}{rss:>10.0f}{uss:>10.0f}")
    by_role: dict[str, list[tuple[float, float]]] = {}
    for name, _pid, rss, uss in rows:
        by_role.setdefault(name, []).append((rss, uss))
    print("\nby role: count, RSS min-max, USS min-max (MiB)")
    for name, values in sorted(by_role.items()):
        rss = [v[0] for v in values]
        uss = [v[1] for v in values]
        print(
            f"{name:<28}{len(values):>3}  {min(rss):>5.0f}-{max(rss):<5.0f}  {min(uss):>5.0f}-{max(uss):<5.0f}"
        )
    if only:
        return
    total_rss = sum(r[2] for r in rows)
    total_uss = sum(r[3] for r in rows)
    print(
        f"\nthe whole stack: RSS {total_rss / 1024:.2f} GiB (summed), USS {total_uss / 1024:.2f} GiB"
    )


if __name__ == "__main__":
    sys.exit(main())
