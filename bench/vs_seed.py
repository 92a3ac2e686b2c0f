"""Percept's default `make run` vs the seed's Flask + Celery + Redis design,
side by side on the same cores, the same images, the same tasks in flight.

The seed is rebuilt in bench/seed/ (Celery 5, Redis broker and result backend,
prefork worker with one process per core, uploads base64-encoded through the
broker, gunicorn gthread in front). Percept is driven only through its public
entry points: `scripts/run_stack.py` (what `make run` runs, default replicas)
and REST. One stack runs at a time, the other fully stopped, each with its own
fresh redis-server (no persistence); the stacks alternate over --rounds and
each figure is the median over the rounds.

Printed: the machine's ceiling for each model (one warmed process per core
looping decode + model call, no IPC), then for both stacks: face and object
images/s and tiny-image tasks/s (simple mode, ?wait=true, 16 in flight), round
trip p50/p99 at one client, async mode (202 + polling) as an extra line, and
server-side CPU per task split by process (psutil CPU-time deltas over each
measured window) with the overhead beyond the model call. Targets are the
issue's, for Percept; nothing here is asserted in tests.

python -m bench.vs_seed [--seconds S] [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench import http_load

ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL = ROOT / "object_service" / "models" / "shapes-yolo.pt"
WORK = ROOT / ".run" / "bench-vs-seed"
HOST = "127.0.0.1"
PATHS = {"face": "/api/detect/face/image", "object": "/api/detect/object/image"}


def say(message: str) -> None:
    print(message, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# --- images -----------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    key: str  # face / object / tiny
    title: str
    backend: str  # the REST path's kind: face or object
    content: bytes


def workloads() -> dict[str, Workload]:
    """grace_hopper (512x600, one face), a 64x64 crop of her face, bus.jpg."""
    import matplotlib.cbook
    import ultralytics
    from PIL import Image

    from bench.seed import calls

    portrait = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    if not portrait.is_file():
        sys.exit(f"matplotlib's sample image {portrait} is missing: reinstall matplotlib")
    face = portrait.read_bytes()
    rgb = calls.decode(face)
    if rgb.shape[:2] != (600, 512):
        sys.exit(f"{portrait} is {rgb.shape[1]}x{rgb.shape[0]}, expected 512x600")
    # The tiny image: the face's box widened by half its height, resized to 64x64
    # (a face that HOG still finds once upsampled, as every face request does).
    found = calls.faces(rgb)["faces"]
    if len(found) != 1:
        sys.exit(f"expected one face in {portrait}, found {len(found)}")
    box = found[0]["box"]
    m = (box["bottom"] - box["top"]) // 2
    crop = Image.fromarray(
        rgb[max(0, box["top"] - m) : box["bottom"] + m, max(0, box["left"] - m) : box["right"] + m]
    ).resize((64, 64), Image.LANCZOS)
    buf = io.BytesIO()
    crop.save(buf, "JPEG", quality=90)
    bus = (Path(ultralytics.__file__).parent / "assets" / "bus.jpg").read_bytes()
    return {
        "face": Workload("face", "face images/s (grace_hopper 512x600)", "face", face),
        "object": Workload("object", "object images/s (bus.jpg 810x1080)", "object", bus),
        "tiny": Workload("tiny", "tiny-image tasks/s (64x64 face crop)", "face", buf.getvalue()),
    }


# --- in-process: model costs and the machine's ceiling ------------------------


def _model(kind: str, cache: Path):
    """A warmed model call: RGB -> result. kind: face, object-pytorch, object-onnx."""
    os.environ["YOLO_VERBOSE"] = "False"  # read when ultralytics is imported
    from bench.seed import calls

    if kind == "face":
        return calls.faces
    backend = kind.split("-")[1]
    return calls.Objects(DEMO_MODEL, backend=backend, threads=1, cache=cache)


def _costs_worker(jobs: list[tuple[str, str, bytes, int]], cache: str, out) -> None:
    """In one process: per job, decode and model call costs (ms)."""
    from bench.seed import calls

    results = {}
    models: dict[str, Any] = {}
    for name, kind, content, n in jobs:
        model = models.get(kind) or models.setdefault(kind, _model(kind, Path(cache)))
        rgb = calls.decode(content)
        for _ in range(3):
            model(rgb)
        walls, cpus, dec_walls, dec_cpus = [], [], [], []
        for _ in range(n):
            w, c = time.perf_counter(), time.process_time()
            rgb = calls.decode(content)
            w1, c1 = time.perf_counter(), time.process_time()
            model(rgb)
            w2, c2 = time.perf_counter(), time.process_time()
            dec_walls.append(w1 - w)
            dec_cpus.append(c1 - c)
            walls.append(w2 - w1)
            cpus.append(c2 - c1)
        results[name] = {
            "model_wall_ms": statistics.median(walls) * 1000,
            "model_cpu_ms": statistics.fmean(cpus) * 1000,
            "decode_wall_ms": statistics.median(dec_walls) * 1000,
            "decode_cpu_ms": statistics.fmean(dec_cpus) * 1000,
        }
    out.put(results)


def model_costs(loads: dict[str, Workload], quick: bool) -> dict[str, dict[str, float]]:
    scale = 0.2 if quick else 1
    jobs = [
        ("face", "face", loads["face"].content, int(30 * scale)),
        ("tiny", "face", loads["tiny"].content, int(400 * scale)),
        ("object-pytorch", "object-pytorch", loads["object"].content, int(60 * scale)),
        ("object-onnx", "object-onnx", loads["object"].content, int(60 * scale)),
    ]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_costs_worker, args=(jobs, str(WORK / "onnx"), out))
    proc.start()
    result = out.get(timeout=900)
    proc.join()
    return result


def _ceiling_worker(kind: str, content: bytes, seconds: float, cache: str, barrier, out) -> None:
    from bench.seed import calls

    model = _model(kind, Path(cache))
    for _ in range(3):
        model(calls.decode(content))
    barrier.wait()
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        model(calls.decode(content))
        n += 1
    out.put((n / (time.perf_counter() - start), time.process_time() - cpu))


def ceiling(kind: str, content: bytes, processes: int, seconds: float) -> tuple[float, float]:
    """Images/s of `processes` warmed processes each looping decode + model
    call, and the other load on the machine meanwhile (cores)."""
    wait_for_quiet([])
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes + 1), ctx.Queue()
    procs = [
        ctx.Process(
            target=_ceiling_worker,
            args=(kind, content, seconds, str(WORK / "onnx"), barrier, out),
        )
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    barrier.wait()
    busy, start = machine_busy(), time.perf_counter()
    results = [out.get(timeout=900) for _ in procs]
    other = machine_busy() - busy - sum(cpu for _, cpu in results)
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    return sum(rate for rate, _ in results), max(0.0, other / wall)


# --- processes and their CPU ---------------------------------------------------


def module_of(proc: psutil.Process) -> str:
    """`gateway` for `python -m gateway`, `run_stack.py` for a script, else the name."""
    try:
        argv = proc.cmdline()
    except psutil.Error:
        return "?"
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1]
    for arg in argv[1:]:
        if arg.endswith(".py"):
            return Path(arg).name
    return proc.name()


@dataclass
class Root:
    """A process we started; `labels` names it (depth 0) and its descendants
    (depth 1, 2+); None at depth 1 names each child after its own module."""

    proc: psutil.Process
    labels: tuple[str, str | None, str | None]


def label_tree(roots: list[Root]) -> dict[int, tuple[str, psutil.Process]]:
    found: dict[int, tuple[str, psutil.Process]] = {}
    for root in roots:
        top, child_label, deeper = root.labels
        found[root.proc.pid] = (top, root.proc)
        try:
            children = root.proc.children()
        except psutil.Error:
            continue
        for child in children:
            name = child_label or f"{module_of(child)} (server process)"
            found[child.pid] = (name, child)
            try:
                grandchildren = child.children(recursive=True)
            except psutil.Error:
                continue
            for g in grandchildren:
                found[g.pid] = (deeper or f"{module_of(child)} child processes", g)
    return found


def cpu_seconds(proc: psutil.Process) -> float:
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def machine_busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


def other_load(roots: list[Root], seconds: float = 1.0) -> float:
    """Cores busy over `seconds` outside this process and `roots`' trees."""

    def ours() -> float:
        return time.process_time() + sum(cpu_seconds(p) for _, p in label_tree(roots).values())

    busy, own, start = machine_busy(), ours(), time.perf_counter()
    time.sleep(seconds)
    other = machine_busy() - busy - (ours() - own)
    return max(0.0, other / (time.perf_counter() - start))


QUIET = {"max_wait_s": 10.0, "threshold": 0.25}


def wait_for_quiet(roots: list[Root]) -> None:
    """Wait (up to --quiet-wait s) until the rest of the machine is nearly idle:
    other sessions share these cores, and a window is only as good as its quiet."""
    if QUIET["max_wait_s"] <= 0:
        return
    start = time.monotonic()
    while (load := other_load(roots)) > QUIET["threshold"]:
        if time.monotonic() - start >= QUIET["max_wait_s"]:
            say(f"    (the machine stayed busy: {load:.2f} other cores; measuring anyway)")
            return
    if (waited := time.monotonic() - start) > 1.5:
        say(f"    (waited {waited:.0f} s for the rest of the machine to go quiet)")


@dataclass
class CpuWindow:
    """CPU seconds by process label between two marks, plus this process's own
    (the load generator) and the rest of the machine's."""

    roots: list[Root]
    start: dict[int, tuple[str, float]] = field(default_factory=dict)
    by_label: dict[str, float] = field(default_factory=dict)
    client: float = 0.0
    other: float = 0.0
    wall: float = 0.0

    def begin(self) -> None:
        self._t = time.perf_counter()
        self._client = time.process_time()
        self._busy = machine_busy()
        self.start = {
            pid: (lbl, cpu_seconds(p)) for pid, (lbl, p) in label_tree(self.roots).items()
        }

    def end(self) -> None:
        now = {pid: (lbl, cpu_seconds(p)) for pid, (lbl, p) in label_tree(self.roots).items()}
        self.client = time.process_time() - self._client
        self.wall = time.perf_counter() - self._t
        totals: dict[str, float] = defaultdict(float)
        for pid, (lbl, cpu) in now.items():
            before = self.start.get(pid, (lbl, 0.0))[1]
            totals[lbl] += max(0.0, cpu - before)
        self.by_label = dict(totals)
        self.other = max(0.0, machine_busy() - self._busy - sum(totals.values()) - self.client)


# --- the two stacks ------------------------------------------------------------


def wait_until(check, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f}s")


def http_ok(url: str) -> bool:
    return urllib.request.urlopen(url, timeout=2).status == 200


def one_answer(port: int, path: str, content: bytes, headers: dict | None = None) -> bool:
    """A simple-mode upload came back finished."""

    async def ask() -> bool:
        conn = http_load.Connection(HOST, port)
        try:
            request = http_load.upload_request(HOST, port, path, content, "wait=true", headers)
            return http_load.finished(*await conn.exchange(request))
        finally:
            conn.close()

    return asyncio.run(ask())


def stop_process(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM, then SIGKILL to it and whatever it left behind after `grace` s."""
    if proc is None or proc.poll() is not None:
        return
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        family = []
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        say(f"  (pid {proc.pid} did not stop in {grace:.0f}s: killing it)")
        proc.kill()
        proc.wait()
    for p in family:
        try:
            if p.is_running():
                p.kill()
        except psutil.Error:
            pass


class Redis:
    """A private redis-server on a free port, no persistence."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "",
             "--appendonly", "no", "--dir", str(logs)],
            stdout=open(logs / f"redis-{self.port}.log", "ab"),  # noqa: SIM115 - lives with the process
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self.ping, 20, "redis-server", self.proc)

    def ping(self) -> bool:
        with socket.create_connection((HOST, self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        stop_process(self.proc, 10)


def child_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}",
        "YOLO_OFFLINE": "1",
        **extra,
    }


class SeedStack:
    name = "seed"
    title = "seed (Celery)"

    def __init__(self, logs: Path, cores: int, probe: bytes) -> None:
        self.logs, self.cores, self.probe = logs, cores, probe
        self.redis: Redis | None = None
        self.api = self.worker = None
        self.headers: dict[str, str] = {}  # the seed had no authentication

    def start(self) -> None:
        self.redis = Redis(self.logs)
        self.port = free_port()
        env = child_env(
            SEED_REDIS_URL=self.redis.url,
            SEED_OBJECT_MODEL=str(DEMO_MODEL),
            SEED_BIND=f"{HOST}:{self.port}",
        )
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench.seed.tasks", "worker",
             "-P", "prefork", "-c", str(self.cores), "-l", "warning"],
            cwd=ROOT, env=env, stdout=open(self.logs / "seed-celery.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.api = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "bench/seed/gunicorn_conf.py"),
             "bench.seed.app:create_app()"],
            cwd=ROOT, env=env, stdout=open(self.logs / "seed-gunicorn.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(lambda: http_ok(f"http://{HOST}:{self.port}/healthz"), 60, "gunicorn", self.api)
        tiny = self.probe
        wait_until(
            lambda: one_answer(self.port, PATHS["face"], tiny),
            180,
            "celery worker (a face task answered)",
            self.worker,
        )

    def roots(self) -> list[Root]:
        return [
            Root(psutil.Process(self.api.pid), ("gunicorn master", "gunicorn workers (Flask API)", "gunicorn workers (Flask API)")),
            Root(psutil.Process(self.worker.pid), ("celery master (consumer)", "celery pool processes (models)", "celery pool processes (models)")),
            Root(psutil.Process(self.redis.proc.pid), ("redis-server", None, None)),
        ]  # fmt: skip

    def stop(self) -> None:
        stop_process(self.api, 30)
        stop_process(self.worker, 30)
        if self.redis:
            self.redis.stop()


class PerceptStack:
    name = "percept"
    title = "Percept (make run)"

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.redis: Redis | None = None
        self.proc = None
        self.lines: list[str] = []
        self.headers: dict[str, str] = {}  # the admin key make run creates

    def start(self) -> None:
        self.redis = Redis(self.logs)
        self.port = free_port()
        run_dir = self.logs / "run"
        env = child_env(
            REDIS_URL=self.redis.url,
            GATEWAY_PORT=str(self.port),
            OBJECT_MODEL=str(DEMO_MODEL),
            PERCEPT_RUN_DIR=str(run_dir),
        )
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "run_stack.py")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()

        def drain() -> None:  # keeps the pipe from filling; spots the ready line
            for line in self.proc.stdout:
                self.lines.append(line.rstrip())
                if line.strip().endswith("ready"):
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        wait_until(ready.is_set, 600, "scripts/run_stack.py (its ready line)", self.proc)
        key = run_dir / "admin.key"
        if key.is_file():  # auth on, as make run has it
            self.headers = {"Authorization": f"Bearer {key.read_text().strip()}"}

    def roots(self) -> list[Root]:
        return [
            Root(psutil.Process(self.proc.pid), ("run_stack.py (launcher)", None, None)),
            Root(psutil.Process(self.redis.proc.pid), ("redis-server", None, None)),
        ]

    def stop(self) -> None:
        stop_process(self.proc, 90)
        if self.redis:
            self.redis.stop()


# --- measuring one stack ---------------------------------------------------------


@dataclass
class Figures:
    """One stack, one round."""

    rate: dict[str, float] = field(default_factory=dict)  # workload -> tasks/s (simple mode)
    async_rate: dict[str, float] = field(default_factory=dict)
    polls: dict[str, float] = field(default_factory=dict)  # GETs per task, async mode
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # workload -> label -> ms/task
    client_ms: dict[str, float] = field(default_factory=dict)
    other_cores: dict[str, float] = field(default_factory=dict)
    p50: float = 0.0
    p99: float = 0.0
    answers: dict[str, str] = field(default_factory=dict)


def check_answers(
    port: int, loads: dict[str, Workload], headers: dict[str, str] | None = None
) -> dict[str, str]:
    """One simple-mode request of each kind; what came back, in short."""
    import json

    async def ask() -> dict[str, str]:
        conn = http_load.Connection(HOST, port)
        seen = {}
        try:
            for key, load in loads.items():
                request = http_load.upload_request(
                    HOST, port, PATHS[load.backend], load.content, "wait=true", headers
                )
                status, body = await conn.exchange(request)
                if not http_load.finished(status, body):
                    raise RuntimeError(f"{key}: HTTP {status} {body[:300]!r}")
                result = json.loads(body)["result"]
                if "faces" in result:
                    seen[key] = f"{len(result['faces'])} face(s) " + " ".join(
                        "({left},{top},{right},{bottom})".format(**f["box"])
                        for f in result["faces"]
                    )
                else:
                    seen[key] = f"{len(result['detections'])} detection(s)"
        finally:
            conn.close()
        return seen

    return asyncio.run(ask())


def run_window(stack, one, concurrency: int, warmup: float, seconds: float):
    wait_for_quiet(stack.roots())
    meter = CpuWindow(stack.roots())
    window = asyncio.run(
        http_load.closed_loop(
            HOST, stack.port, one, concurrency, warmup, seconds, meter.begin, meter.end
        )
    )
    if window.failures:
        say(f"    {len(window.failures)} failed request(s), e.g. {window.failures[0]}")
    return window, meter


def measure(stack, loads: dict[str, Workload], args) -> Figures:
    fig = Figures()
    fig.answers = check_answers(stack.port, loads, stack.headers)
    for key, load in loads.items():
        request = http_load.upload_request(
            HOST, stack.port, PATHS[load.backend], load.content, "wait=true", stack.headers
        )
        window, meter = run_window(
            stack, http_load.simple_mode(request), args.concurrency, args.warmup, args.seconds
        )
        n = max(1, window.completed)
        fig.rate[key] = window.rate
        fig.cpu[key] = {lbl: s * 1000 / n for lbl, s in meter.by_label.items()}
        fig.client_ms[key] = meter.client * 1000 / n
        fig.other_cores[key] = meter.other / meter.wall
        say(
            f"    {key:<6} simple mode: {window.rate:7.1f} tasks/s  server CPU "
            f"{sum(fig.cpu[key].values()):6.2f} ms/task  load generator {fig.client_ms[key]:.2f} ms/task  "
            f"other load on the machine {fig.other_cores[key]:.2f} cores"
        )
    request = http_load.upload_request(
        HOST, stack.port, PATHS["face"], loads["tiny"].content, "wait=true", stack.headers
    )
    wait_for_quiet(stack.roots())
    latencies = asyncio.run(http_load.round_trips(HOST, stack.port, request, args.round_trips))
    q = statistics.quantiles(latencies, n=100)
    fig.p50, fig.p99 = q[49] * 1000, q[98] * 1000
    say(f"    tiny round trip, one client: p50 {fig.p50:.2f} ms, p99 {fig.p99:.2f} ms")
    for key in ("face", "tiny"):
        load = loads[key]
        request = http_load.upload_request(
            HOST, stack.port, PATHS[load.backend], load.content, headers=stack.headers
        )
        window, _ = run_window(
            stack,
            http_load.async_mode(HOST, stack.port, request, args.poll_ms / 1000, stack.headers),
            args.concurrency,
            args.warmup,
            args.seconds,
        )
        fig.async_rate[key] = window.rate
        fig.polls[key] = window.requests / max(1, window.completed) - 1
        say(
            f"    {key:<6} async mode:  {window.rate:7.1f} tasks/s  ({fig.polls[key]:.1f} GETs per task)"
        )
    return fig


# --- the report --------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verdict(ok: bool, miss: str) -> str:
    return "ok" if ok else f"MISSED ({miss})"


def report(raw_ceil, costs, runs: dict[str, list[Figures]], loads, args, cores: int) -> None:
    seed, ours = runs["seed"], runs["percept"]
    ceil = {
        kind: {n: med([rate for rate, _ in values]) for n, values in by_n.items()}
        for kind, by_n in raw_ceil.items()
    }

    def m(figs: list[Figures], get) -> float:
        return med([get(f) for f in figs])

    rows: list[tuple[str, str, str, str, str, str]] = []

    def fmt(x: float, digits: int = 1) -> str:
        return f"{x:.{digits}f}"

    def ceiling_cell(kind: str, backend: str = "") -> str:
        one, all_ = ceil[kind][1], ceil[kind][cores]
        return f"{fmt(one)} -> {fmt(all_)} ({all_ / one:.2f}x){backend}"

    rows.append((
        f"machine ceiling, face images/s (face_locations on grace_hopper; 1 -> {cores} processes)",
        ceiling_cell("face"), ceiling_cell("face"), "", "", "",
    ))  # fmt: skip
    rows.append((
        f"machine ceiling, object images/s (bus.jpg; 1 -> {cores} processes, 1 thread each)",
        ceiling_cell("object-pytorch", " PyTorch"), ceiling_cell("object-onnx", " ONNX Runtime"),
        "", "", "",
    ))  # fmt: skip

    for key, ceil_key, ceil_name in (
        ("face", "face", "face"),
        ("object", "object-onnx", "ONNX Runtime"),
    ):
        s, p = m(seed, lambda f, k=key: f.rate[k]), m(ours, lambda f, k=key: f.rate[k])
        c = ceil[ceil_key][cores]
        target = 0.95 * c
        seed_c = ceil["object-pytorch"][cores] if key == "object" else c
        rows.append((
            f"{loads[key].title}, simple mode, {args.concurrency} in flight",
            f"{fmt(s)} ({s / seed_c:.2f} of its ceiling)",
            f"{fmt(p)} ({p / c:.2f} of the {ceil_name} ceiling)",
            f"{p / s:.2f}x",
            f">= 0.95 x ceiling = {target:.1f}",
            verdict(p >= target, f"{p / c:.2f} of the ceiling, {target - p:.1f}/s short"),
        ))  # fmt: skip
    s, p = m(seed, lambda f: f.rate["tiny"]), m(ours, lambda f: f.rate["tiny"])
    rows.append((f"{loads['tiny'].title}, simple mode, {args.concurrency} in flight", fmt(s), fmt(p),
                 f"{p / s:.2f}x", ">= 1.5x the seed", verdict(p >= 1.5 * s, f"{p / s:.2f}x")))  # fmt: skip
    model_ms = costs["tiny"]["model_wall_ms"]
    s, p = m(seed, lambda f: f.p50), m(ours, lambda f: f.p50)
    rows.append((f"tiny task round trip p50, one client (model call alone: {model_ms:.2f} ms)",
                 f"{fmt(s, 2)} ms", f"{fmt(p, 2)} ms", f"{p / s:.2f}x",
                 f"<= model + 2 ms = {model_ms + 2:.2f} ms",
                 verdict(p <= model_ms + 2, f"{p - model_ms - 2:.2f} ms over")))  # fmt: skip
    s, p = m(seed, lambda f: f.p99), m(ours, lambda f: f.p99)
    rows.append(("tiny task round trip p99, one client", f"{fmt(s, 2)} ms", f"{fmt(p, 2)} ms",
                 f"{p / s:.2f}x", "reported", ""))  # fmt: skip
    for key in ("face", "tiny"):
        s = m(seed, lambda f, k=key: f.async_rate[k])
        p = m(ours, lambda f, k=key: f.async_rate[k])
        sp = m(seed, lambda f, k=key: f.polls[k])
        pp = m(ours, lambda f, k=key: f.polls[k])
        rows.append((f"async mode (202 + GET every {args.poll_ms:.0f} ms): {loads[key].title}",
                     f"{fmt(s)} ({sp:.1f} GETs/task)", f"{fmt(p)} ({pp:.1f} GETs/task)",
                     f"{p / s:.2f}x", "reported", ""))  # fmt: skip
    model_cpu = {
        "face": ("face", "face"),
        "object": ("object-pytorch", "object-onnx"),
        "tiny": ("tiny", "tiny"),
    }
    for key in ("face", "object", "tiny"):
        s_total = m(seed, lambda f, k=key: sum(f.cpu[k].values()))
        p_total = m(ours, lambda f, k=key: sum(f.cpu[k].values()))
        s_cost, p_cost = costs[model_cpu[key][0]], costs[model_cpu[key][1]]
        s_over = s_total - s_cost["model_cpu_ms"]
        p_over = p_total - p_cost["model_cpu_ms"]
        rows.append((
            f"server CPU per {key} task: all processes / minus the model call / minus decode + model call",
            f"{s_total:.2f} / {s_over:.2f} / {s_over - s_cost['decode_cpu_ms']:.2f} ms",
            f"{p_total:.2f} / {p_over:.2f} / {p_over - p_cost['decode_cpu_ms']:.2f} ms",
            f"{p_over / s_over:.2f}x" if s_over > 0 else "",
            "minus the model call <= 1.0 ms",
            verdict(p_over <= 1.0, f"{p_over - 1.0:.2f} ms over; decoding alone is {p_cost['decode_cpu_ms']:.2f} ms"),
        ))  # fmt: skip

    say("")
    say(f"Percept vs the seed: {cores} cores, {args.concurrency} tasks in flight, "
        f"{len(seed)} alternating round(s) of {args.seconds:.0f} s windows, medians; "
        "targets use simple mode (?wait=true)")  # fmt: skip
    say("")
    say(
        "| figure | seed (Celery) | Percept (make run) | Percept / seed | target (Percept) | verdict |"
    )
    say("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        say("| " + " | ".join(row) + " |")

    say("")
    say("Model call costs, in-process, one thread (median wall / mean CPU):")
    for name, c in costs.items():
        say(
            f"  {name:<15} model {c['model_wall_ms']:7.2f} ms wall {c['model_cpu_ms']:7.2f} ms CPU   "
            f"decode {c['decode_wall_ms']:6.2f} ms wall {c['decode_cpu_ms']:6.2f} ms CPU"
        )

    say("")
    say(
        "Server-side CPU per task by process (ms/task, psutil CPU-time deltas over the window, medians):"
    )
    say("| stack / process | face | object | tiny |")
    say("| --- | --- | --- | --- |")
    for stack_name, figs in (("seed", seed), ("Percept", ours)):
        labels = sorted({lbl for f in figs for k in f.cpu for lbl in f.cpu[k]})
        for lbl in labels:
            cells = [fmt(m(figs, lambda f, k=k, b=lbl: f.cpu[k].get(b, 0.0)), 2) for k in ("face", "object", "tiny")]  # fmt: skip
            say(f"| {stack_name}: {lbl} | " + " | ".join(cells) + " |")
        totals = [fmt(m(figs, lambda f, k=k: sum(f.cpu[k].values())), 2) for k in ("face", "object", "tiny")]  # fmt: skip
        say(f"| **{stack_name}: all server processes** | " + " | ".join(totals) + " |")
        clients = [fmt(m(figs, lambda f, k=k: f.client_ms[k]), 2) for k in ("face", "object", "tiny")]  # fmt: skip
        say(f"| {stack_name}: (load generator, not counted) | " + " | ".join(clients) + " |")
    say("")
    say(
        "Every round, images/s or tasks/s (other load on the machine: cores busy outside what is measured):"
    )
    for kind, by_n in raw_ceil.items():
        for n, values in by_n.items():
            cells = ", ".join(f"{rate:.1f} ({other:.2f})" for rate, other in values)
            say(f"  ceiling  {kind} x{n}: {cells}")
    for stack_name, figs in (("seed", seed), ("Percept", ours)):
        for key in ("face", "object", "tiny"):
            cells = ", ".join(f"{f.rate[key]:.1f} ({f.other_cores[key]:.2f})" for f in figs)
            say(f"  {stack_name:<8} {key:<7} simple mode: {cells}")
    say("")
    say(
        "Answers (one request each): "
        + "; ".join(f"{n} {k}: {v}" for n, figs in runs.items() for k, v in figs[0].answers.items())
    )


def set_priority(nice: int) -> None:
    """Niceness for this process and everything it starts. With autogroup
    scheduling on, a process's niceness only counts inside its own session's
    group, so the group's niceness is set too."""
    os.nice(nice)
    autogroup = Path("/proc/self/autogroup")
    if autogroup.is_file():
        try:
            autogroup.write_text(str(nice))
        except OSError as exc:
            say(f"(could not set this session's autogroup niceness: {exc})")


# --- main ----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="each measured window")
    parser.add_argument("--warmup", type=float, default=3.0, help="load before each window")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per stack")
    parser.add_argument("--concurrency", type=int, default=16, help="tasks in flight")
    parser.add_argument("--round-trips", type=int, default=300, help="one-client requests")
    parser.add_argument("--poll-ms", type=float, default=50.0, help="async mode poll interval")
    parser.add_argument("--ceiling-seconds", type=float, default=8.0)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=QUIET["max_wait_s"],
        help="before each window, wait up to this long for the rest of the machine to go idle",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for the benchmark and both stacks (negative needs root): on a shared "
        "machine, -10 makes other sessions' processes yield the cores while it measures",
    )
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks that it runs")
    args = parser.parse_args()
    if args.nice:
        set_priority(args.nice)
    QUIET["max_wait_s"] = args.quiet_wait
    if args.quick:
        args.seconds, args.warmup, args.rounds = 3.0, 1.0, 1
        args.round_trips, args.ceiling_seconds, QUIET["max_wait_s"] = 40, 2.0, 0.0
    for module in ("celery", "flask", "gunicorn"):
        try:
            __import__(module)
        except ImportError:
            sys.exit(f"{module} is missing: `make bench-vs-seed` installs the bench extra")
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed: `make redis` installs it")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    cores = os.cpu_count() or 1
    WORK.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="logs-", dir=WORK))

    loads = workloads()
    say(
        f"bench-vs-seed: {cores} cores; images: grace_hopper.jpg {len(loads['face'].content)} B, "
        f"tiny 64x64 face crop {len(loads['tiny'].content)} B, bus.jpg {len(loads['object'].content)} B; "
        f"object model {DEMO_MODEL.relative_to(ROOT)}; logs in {logs}"
    )
    replicas = ", ".join(
        f"{v}={os.environ.get(v) or 'default'}" for v in ("FACE_REPLICAS", "OBJECT_REPLICAS")
    )
    say(f"Percept: scripts/run_stack.py as `make run` starts it ({replicas})")
    say(
        f"The machine is shared: figures are noisy (see 'other load' per window); "
        f"niceness {os.nice(0)} for everything measured here"
        + (f" (autogroup: {Path('/proc/self/autogroup').read_text().strip()})" if args.nice else "")
        + "."
    )
    say("model call costs, in-process ...")
    costs = model_costs(loads, args.quick)
    runs: dict[str, list[Figures]] = {"seed": [], "percept": []}
    stacks = {"seed": SeedStack(logs, cores, loads["tiny"].content), "percept": PerceptStack(logs)}
    say(
        f"Stacks alternate, one running at a time (the other fully stopped): "
        f"{args.rounds} round(s), {args.seconds:.0f} s windows after {args.warmup:.0f} s of warm-up"
    )
    ceil: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for round_no in range(1, args.rounds + 1):
        say(f"[round {round_no}] the machine's ceiling: one warmed process per core, no IPC")
        for kind, load in (
            ("face", "face"),
            ("object-pytorch", "object"),
            ("object-onnx", "object"),
        ):
            for n in sorted({1, cores}) if round_no == 1 else [cores]:
                rate, other = ceiling(kind, loads[load].content, n, args.ceiling_seconds)
                ceil[kind][n].append((rate, other))
                say(
                    f"    {kind:<15} {n} process(es): {rate:6.1f} images/s  "
                    f"(other load on the machine {other:.2f} cores)"
                )
        for name in ("seed", "percept"):
            stack = stacks[name]
            say(f"[round {round_no}] {stack.title}: starting")
            try:
                stack.start()
                runs[name].append(measure(stack, loads, args))
            finally:
                stack.stop()
    report(ceil, costs, runs, loads, args, cores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
