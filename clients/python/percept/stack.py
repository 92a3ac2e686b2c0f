"""Where the SDK and the `percept` command find Percept, without being told.

Each setting is, in this order: the argument (or the command's flag); the
environment; the running `make run` stack; the default.

    setting          environment            the stack (stack.json)   default
    REST URL         PERCEPT_URL            url                      http://127.0.0.1:8000
    REST API key     PERCEPT_API_KEY        admin_key_file's content none
    face target      PERCEPT_FACE_TARGET    face_targets             127.0.0.1:50051
    object target    PERCEPT_OBJECT_TARGET  object_targets           127.0.0.1:50052
    gRPC token       PERCEPT_GRPC_TOKEN     grpc_token_file's content none

`make run` (scripts/run_stack.py) writes stack.json into its run directory once
it is ready and removes it when it stops. It is found as PERCEPT_RUN_DIR's
stack.json when PERCEPT_RUN_DIR is set, else as .run/stack.json in the current
directory or the nearest parent that has one; a file whose launcher (`pid`)
is no longer running is left alone. The stack's key and token are only sent to
the stack's own addresses: a URL or target given some other way gets neither.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

STACK_FILE = "stack.json"
RUN_DIR = ".run"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_FACE_TARGET = "127.0.0.1:50051"
DEFAULT_OBJECT_TARGET = "127.0.0.1:50052"
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


@dataclass(frozen=True)
class Stack:
    """A running `make run` stack, as its stack.json describes it."""

    path: Path
    url: str
    face_targets: str
    object_targets: str
    admin_key_file: str = ""
    grpc_token_file: str = ""

    @property
    def admin_key(self) -> str | None:
        return _read_secret(self.admin_key_file)

    @property
    def grpc_token(self) -> str | None:
        return _read_secret(self.grpc_token_file)


def stack_file(cwd: Path | None = None) -> Path | None:
    """The stack.json to read: PERCEPT_RUN_DIR's, else the nearest .run/stack.json."""
    run_dir = os.environ.get("PERCEPT_RUN_DIR")
    if run_dir:
        path = Path(run_dir) / STACK_FILE
        return path if path.is_file() else None
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        path = folder / RUN_DIR / STACK_FILE
        if path.is_file():
            return path
    return None


def find_stack(cwd: Path | None = None) -> Stack | None:
    """The running stack, or None (no stack.json, an unreadable one, or a stale one)."""
    path = stack_file(cwd)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
        pid = int(data["pid"])
        stack = Stack(
            path,
            str(data["url"]),
            str(data.get("face_targets") or ""),
            str(data.get("object_targets") or ""),
            str(data.get("admin_key_file") or ""),
            str(data.get("grpc_token_file") or ""),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring %s: %s", path, exc)
        return None
    return stack if _alive(pid) else None


def rest_settings(url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """(URL, API key) for the REST clients; an explicit api_key of "" sends none."""
    url = url or os.environ.get("PERCEPT_URL")
    if api_key is None:
        api_key = os.environ.get("PERCEPT_API_KEY") or None
    stack = find_stack() if not url or api_key is None else None
    url = url or (stack.url if stack else DEFAULT_URL)
    if api_key is None and stack and _same_url(url, stack.url):
        api_key = stack.admin_key
    return url.rstrip("/"), api_key or None


def grpc_settings(
    face: str | None, obj: str | None, token: str | None
) -> tuple[str, str, str | None]:
    """(face target, object target, token) for the gRPC clients; a token of "" sends none."""
    face = face or os.environ.get("PERCEPT_FACE_TARGET")
    obj = obj or os.environ.get("PERCEPT_OBJECT_TARGET")
    if token is None:
        token = os.environ.get("PERCEPT_GRPC_TOKEN") or None
    stack = find_stack() if not (face and obj and token is not None) else None
    if stack:
        face = face or stack.face_targets
        obj = obj or stack.object_targets
    face = face or DEFAULT_FACE_TARGET
    obj = obj or DEFAULT_OBJECT_TARGET
    if (
        token is None
        and stack
        and _same_targets(face, stack.face_targets)
        and _same_targets(obj, stack.object_targets)
    ):
        token = stack.grpc_token
    return face, obj, token or None


def _read_secret(path: str) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return None


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would end the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: running
    return pid > 0


def _place(host: str | None, port: int | None) -> tuple[str, int | None]:
    host = (host or "").lower()
    return ("loopback" if host in _LOOPBACK else host), port


def _same_url(a: str, b: str) -> bool:
    try:
        x, y = urlsplit(a.rstrip("/")), urlsplit(b.rstrip("/"))
        ports = [u.port or {"http": 80, "https": 443}.get(u.scheme) for u in (x, y)]
    except ValueError:
        return False
    return (x.scheme, *_place(x.hostname, ports[0]), x.path) == (
        y.scheme,
        *_place(y.hostname, ports[1]),
        y.path,
    )


def _same_targets(a: str, b: str) -> bool:
    def places(spec: str) -> set[tuple[str, int | None]]:
        out = set()
        for part in spec.split(","):
            host, _, port = part.strip().rpartition(":")
            out.add(_place(host.strip("[]"), int(port) if port.isdigit() else None))
        return out

    return bool(b) and places(a) == places(b)
