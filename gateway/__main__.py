"""python -m gateway --port N [--workers W]: the REST API (dispatchers included
unless GATEWAY_DISPATCHERS=false). With several workers, W processes share the
port (the kernel spreads connections), each with its own dispatchers."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings
from percept_runtime.logs import configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=GatewaySettings.__doc__)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int, help="API processes on the port (GATEWAY_WORKERS)")
    parser.add_argument("--no-dispatchers", action="store_true", help="serve the API only")
    args = parser.parse_args(argv)
    # Flags become env, so every worker process (which builds its own settings) sees them.
    for name, value in (("HOST", args.host), ("PORT", args.port), ("WORKERS", args.workers)):
        if value is not None:
            os.environ[f"GATEWAY_{name}"] = str(value)
    if args.no_dispatchers:
        os.environ["GATEWAY_DISPATCHERS"] = "false"
    settings = GatewaySettings()
    configure_logging(settings.log_level)
    common = dict(
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=10,
        access_log=False,
        root_path=settings.root_path,
    )
    if settings.workers > 1:
        uvicorn.run("gateway.app:create_app", factory=True, workers=settings.workers, **common)
    else:
        uvicorn.run(create_app(settings), **common)


if __name__ == "__main__":
    main(sys.argv[1:])
