"""The job table's Lua scripts, read from `lua/` beside this module.

Each script is its own `.lua` file; the shared functions (`lib.lua`, the
previews' `previews.lua`, and gateway/events.py's publish) are put before
those that use them, so a script is still one EVALSHA. The Dockerfile copies
gateway/ whole and the project runs from its source tree (pyproject's
`packages = []`), so the files travel with the code.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gateway.events import LUA_PUBLISH
from gateway.stats import BOUNDS_MS

LUA = Path(__file__).with_name("lua")

# gateway/stats.py reads the histograms back with the same bounds.
_BOUNDS = f"local BOUNDS = {{{', '.join(map(str, BOUNDS_MS))}}}\n"


def _read(name: str) -> str:
    return (LUA / f"{name}.lua").read_text()


@cache
def source(name: str) -> str:
    """The whole text of script `name` (lua/<name>.lua), with what it uses."""
    parts = {
        "submit": [_BOUNDS, _read("lib")],
        "start": [_BOUNDS, _read("lib")],
        "requeue": [_BOUNDS, _read("lib")],
        "finish": [_BOUNDS, _read("lib"), _read("previews"), LUA_PUBLISH],
    }.get(name, [])
    return "\n".join([*parts, _read(name)])
