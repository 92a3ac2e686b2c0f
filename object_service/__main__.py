"""python -m object_service --port N --model PATH"""

from __future__ import annotations

import sys

from object_service.inference import WeightsUnavailable
from object_service.server import run_server
from object_service.settings import ObjectSettings
from percept_runtime.logs import configure_logging
from percept_runtime.server import run
from percept_runtime.settings import settings_from_argv


def main(argv: list[str] | None = None) -> None:
    settings = settings_from_argv(
        ObjectSettings,
        argv,
        prog="python -m object_service",
        model="weights: a .pt/.onnx path or an ultralytics name (env OBJECT_MODEL)",
        backend="auto | pytorch | onnx (env OBJECT_BACKEND)",
        device="cpu | cuda:N (env OBJECT_DEVICE)",
    )
    configure_logging(settings.log_level)
    try:
        run(run_server(settings))
    except WeightsUnavailable as exc:
        sys.exit(f"object_service: cannot start: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
