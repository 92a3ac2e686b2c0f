"""python -m face_service --port N --workers W"""

from __future__ import annotations

import sys

from face_service.server import run_server
from face_service.settings import FaceSettings
from percept_runtime.logs import configure_logging
from percept_runtime.server import run
from percept_runtime.settings import settings_from_argv


def main(argv: list[str] | None = None) -> None:
    settings = settings_from_argv(FaceSettings, argv, prog="python -m face_service")
    configure_logging(settings.log_level)
    run(run_server(settings))


if __name__ == "__main__":
    main(sys.argv[1:])
