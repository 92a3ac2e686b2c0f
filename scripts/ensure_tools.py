"""Install the test tools that are not Python packages, when missing, from
Debian's packages (what `make tools` runs; the browser tests' fixture too):

- chromium: the browser the console's tests drive through Playwright;
- promtool: Prometheus' own checker of the alert rules in deploy/monitoring/,
  taken out of Debian's `prometheus` package into .venv/bin (the server in that
  package is never installed or started);
- mosquitto: the MQTT broker the MQTT publisher's test starts on loopback.

    python scripts/ensure_tools.py [chromium] [promtool] [mosquitto]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path


def _apt(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True)


def _need_root(what: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"{what} is missing: install it (Debian: apt-get install {what}) and run again")


def chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    _need_root("chromium")
    print("installing chromium (Debian package) for the browser tests", file=sys.stderr)
    if _apt("install", "-y", "-q", "--no-install-recommends", "chromium").returncode != 0:
        _apt("update", "-q")
        done = _apt("install", "-y", "-q", "--no-install-recommends", "chromium")
        if done.returncode != 0:
            sys.exit(f"apt-get install chromium failed:\n{done.stderr}")
    return shutil.which("chromium") or sys.exit("chromium installed but not on PATH")


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
        got = subprocess.run(
            ["apt-get", "download", "prometheus"], cwd=tmp, capture_output=True, text=True
        )
        if got.returncode != 0:
            _apt("update", "-q")
            got = subprocess.run(
                ["apt-get", "download", "prometheus"], cwd=tmp, capture_output=True, text=True
            )
            if got.returncode != 0:
                sys.exit(f"apt-get download prometheus failed:\n{got.stderr}")
        deb = next(Path(tmp).glob("prometheus_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), f"{tmp}/x"], check=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f"{tmp}/x/usr/bin/promtool", target)
    return str(target)


def mosquitto() -> str:
    found = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    if found:
        return found
    _need_root("mosquitto")
    print("installing mosquitto (Debian package) for the MQTT test", file=sys.stderr)
    if _apt("install", "-y", "-q", "--no-install-recommends", "mosquitto").returncode != 0:
        _apt("update", "-q")
        done = _apt("install", "-y", "-q", "--no-install-recommends", "mosquitto")
        if done.returncode != 0:
            sys.exit(f"apt-get install mosquitto failed:\n{done.stderr}")
    return shutil.which("/usr/sbin/mosquitto") or sys.exit("mosquitto installed but not found")


TOOLS = {"chromium": chromium, "promtool": promtool, "mosquitto": mosquitto}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(TOOLS):
        print(f"{name}: {TOOLS[name]()}")
