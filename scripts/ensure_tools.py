"""Install the test tools that are not Python packages, when missing, from
Debian's packages (what `make tools` runs; the browser tests' fixture too):

- chromium: the browser the console's tests drive through Playwright;
- redis-sentinel: Redis Sentinel (Debian's `redis-sentinel`), for the failover
  test's three sentinels in front of a primary and a replica;
- promtool: Prometheus' own checker of the alert rules in deploy/monitoring/,
  taken out of Debian's `prometheus` package into .venv/bin (the server in that
  package is never installed or started);
- mosquitto: the MQTT broker the MQTT publisher's test starts on loopback;
- rtsp: GStreamer's RTSP server with Debian's python3 bindings (the live
  sources' tests serve a clip over RTSP on loopback with it);
- ffmpeg: makes the HLS segments the live sources' HLS test serves.

    python scripts/ensure_tools.py [chromium] [redis-sentinel] [promtool] [mosquitto] [rtsp] [ffmpeg]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path


def _apt(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    """apt-get ARGS, once more after `apt-get update` when it fails (a stale
    package list is the usual reason); exits with apt's error the second time."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in range(2):
        done = subprocess.run(["apt-get", *args], env=env, cwd=cwd, capture_output=True, text=True)
        if done.returncode == 0:
            return done
        if attempt == 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
    sys.exit(f"apt-get {' '.join(args)} failed:\n{done.stderr}")


def _need_root(what: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"{what} is missing: install it (Debian: apt-get install {what}) and run again")


def _debian(packages: list[str], what: str) -> None:
    _need_root(" ".join(packages))
    print(f"installing {what} (Debian packages)", file=sys.stderr)
    _apt("install", "-y", "-q", "--no-install-recommends", *packages)


def _command(names: tuple[str, ...], packages: list[str], what: str) -> str:
    """The first of `names` found (on PATH, or a path), installed from Debian's
    `packages` when none is."""

    def found() -> str | None:
        return next((path for name in names if (path := shutil.which(name))), None)

    if path := found():
        return path
    _debian(packages, what)
    return found() or sys.exit(f"{what} installed but {names[0]} not found")


def chromium() -> str:
    return _command(("chromium",), ["chromium"], "chromium for the browser tests")


def redis_sentinel() -> str:
    return _command(("redis-sentinel",), ["redis-sentinel"], "redis-sentinel for the failover test")


def promtool_path() -> Path:
    return Path(sysconfig.get_paths()["scripts"]) / "promtool"


def promtool() -> str:
    target = promtool_path()
    if target.exists():
        return str(target)
    found = shutil.which("promtool")
    if found:
        return found
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        sys.exit("promtool is missing: install Prometheus' promtool and put it on PATH")
    print("fetching promtool from Debian's prometheus package", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # apt's download user must be able to write here
        _apt("download", "prometheus", cwd=tmp)
        deb = next(Path(tmp).glob("prometheus_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), f"{tmp}/x"], check=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f"{tmp}/x/usr/bin/promtool", target)
    return str(target)


def mosquitto() -> str:
    return _command(
        ("mosquitto", "/usr/sbin/mosquitto"), ["mosquitto"], "mosquitto for the MQTT test"
    )


RTSP_PACKAGES = [
    "python3-gi",
    "gir1.2-gst-rtsp-server-1.0",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-ugly",
]
RTSP_PROBE = (
    "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
)


def rtsp() -> str:
    """Debian's python3 that can import GstRtspServer (tests/rtsp_server.py runs on it)."""
    python = "/usr/bin/python3"

    def works() -> bool:
        return subprocess.run([python, "-c", RTSP_PROBE], capture_output=True).returncode == 0

    if not (Path(python).exists() and works()):
        _debian(RTSP_PACKAGES, "GStreamer's RTSP server")
        if not works():
            sys.exit("GStreamer's RTSP server installed, but python3 cannot import it")
    return python


def ffmpeg() -> str:
    return _command(("ffmpeg",), ["ffmpeg"], "ffmpeg")


TOOLS = {
    "chromium": chromium,
    "redis-sentinel": redis_sentinel,
    "promtool": promtool,
    "mosquitto": mosquitto,
    "rtsp": rtsp,
    "ffmpeg": ffmpeg,
}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(TOOLS):
        print(f"{name}: {TOOLS[name]()}")
