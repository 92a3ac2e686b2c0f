"""python -m gateway --port N: the REST API (dispatchers included unless GATEWAY_DISPATCHERS=false)."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings
from percept_runtime.logs import configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=GatewaySettings.__doc__)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--no-dispatchers", action="store_true", help="serve the API only")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if args.no_dispatchers:
        overrides["dispatchers"] = False
    settings = GatewaySettings(**overrides)
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=10,
        access_log=False,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
