"""What every benchmark shares: two rates measured side by side and their
ratio printed, and the rates themselves (tasks through the gateway's REST
API, frames of a gRPC stream, frames decoded and run in-process)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np


def report(name: str, ours: float, base: float, unit: str, target: float | None = None) -> None:
    ratio = ours / base
    goal = (
        f"(target >= {target}x) {'ok' if ratio >= target else 'BELOW TARGET'}"
        if target
        else "(reported)"
    )
    print(f"{name:<62} {ours:8.2f} vs {base:8.2f} {unit:<9} ratio {ratio:5.2f}x {goal}", flush=True)


def alternate(ours, base, rounds: int = 3) -> tuple[float, float]:
    """Measure two rates in alternating rounds and return their medians, so a
    burst of noise on a shared machine lands on both sides, not on one."""
    a, b = [], []
    for _ in range(rounds):
        b.append(base())
        a.append(ours())
    return sorted(a)[rounds // 2], sorted(b)[rounds // 2]


async def rest_rate(
    url: str,
    path: str,
    content: bytes,
    n: int,
    concurrency: int,
    headers: dict[str, str],
    **params: str,
) -> float:
    """Tasks/s through a submit route in simple mode (?wait=true), `concurrency`
    in flight, after one warm-up task per client."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, headers=headers) as client:

        async def one() -> None:
            async with sem:
                response = await client.post(
                    path,
                    params={"wait": "true", **params},
                    files={"file": ("upload.jpg", content, "image/jpeg")},
                )
                assert response.status_code == 200, response.text

        await asyncio.gather(*(one() for _ in range(concurrency)))  # warm every replica
        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - start)


def stream_rate(call: Callable[[], Iterable]) -> float:
    """Items/s of a server stream, timed from the call to its last item."""
    start = time.perf_counter()
    n = sum(1 for _ in call())
    return n / (time.perf_counter() - start)


def video_rate(path: Path, run: Callable[[np.ndarray], object]) -> float:
    """Frames/s decoding the video at `path` and calling `run` on each RGB frame."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    start, n = time.perf_counter(), 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        run(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        n += 1
    return n / (time.perf_counter() - start)
