"""What every long-running process of the stack does alike: stop on SIGTERM or
SIGINT, and, for the workers without a port (dispatchers, source workers),
answer a container's liveness probe (`--check`) from the age of the heartbeat
file they touch while they work."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time


def stop_on_signals(stop: asyncio.Event | None = None) -> asyncio.Event:
    """An event (`stop`, or a new one) set by SIGTERM or SIGINT."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def add_check_flags(parser: argparse.ArgumentParser, what: str) -> None:
    """--check (exit 0 if `what` is alive) and --max-age."""
    parser.add_argument(
        "--check", action="store_true", help=f"exit 0 if this container's {what} alive"
    )
    parser.add_argument(
        "--max-age", type=float, default=30.0, help="with --check: oldest acceptable heartbeat, s"
    )


def check_heartbeat(heartbeat_file: str, max_age_s: float) -> int:
    """Exit status for a liveness probe: 0 when the heartbeat file is fresh."""
    try:
        age = time.time() - os.stat(heartbeat_file).st_mtime
    except FileNotFoundError:
        print(f"no heartbeat at {heartbeat_file}")
        return 1
    print(f"heartbeat {age:.1f}s old")
    return 0 if age <= max_age_s else 1
