"""The toy backend's processes for a test module: the toy's server, and the
environment of a gateway that declares it (face and object declared too, on
an address nobody answers)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support import ROOT, ServerProcess, free_port
from tests.toy.build import generate


def pythonpath(out: Path) -> str:
    """PYTHONPATH for the toy's processes: the tree, gen/, and the toy's Python
    generated from its proto now, under `out`."""
    return os.pathsep.join((str(ROOT), str(ROOT / "gen"), str(generate(out))))


def server(path: str) -> ServerProcess:
    """The toy's gRPC server, started."""
    return ServerProcess("tests.toy.server", env={"PYTHONPATH": path}).start(timeout=60)


def gateway_env(toy: ServerProcess, path: str, redis_url: str, **settings: str) -> dict[str, str]:
    """A gateway's environment with the toy declared and targeted; `settings`
    (GATEWAY_...) on top. Webhooks may go to loopback, where tests receive them."""
    nowhere = f"127.0.0.1:{free_port()}"  # face and object: declared, not used here
    return {
        "PYTHONPATH": path,
        "REDIS_URL": redis_url,
        "GATEWAY_DECLARATIONS": "tests.toy.declaration",
        "GATEWAY_TOY_TARGETS": toy.address,
        "GATEWAY_FACE_TARGETS": nowhere,
        "GATEWAY_OBJECT_TARGETS": nowhere,
        "GATEWAY_WEBHOOK_ALLOW_PRIVATE": "true",
        **settings,
    }
