"""Build hooks: the wheel carries the generated gRPC code from the repository's gen/.

gen/percept/{common,face,object}/v1 is the one committed copy of the generated
code (`make proto` writes it). Building the wheel copies it into the package
(percept/face/v1/...), so `pip install ./clients/python` gives a complete SDK,
and no second copy is committed. An sdist carries a copy under _gen/ so that a
wheel can be built from it away from the repository. An editable install copies
nothing: the checkout's gen/ is on the path there (`make setup` puts it there)
and `percept.__path__` is extended over it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
GENERATED = ("common", "face", "object")
SOURCES = (HERE.parent.parent / "gen" / "percept", HERE / "_gen" / "percept")


def generated_root() -> Path:
    for root in SOURCES:
        if all((root / name).is_dir() for name in GENERATED):
            return root
    raise RuntimeError(
        "generated gRPC code not found: build from the repository checkout "
        "(needs gen/percept next to clients/, made by `make proto`)"
    )


def copy_generated(dest: Path) -> list[str]:
    """Copy gen/percept/{common,face,object} under dest/; return the files written."""
    root = generated_root()
    written = []
    for name in GENERATED:
        for src in sorted((root / name).rglob("*")):
            if src.suffix not in (".py", ".pyi") or "__pycache__" in src.parts:
                continue
            target = dest / name / src.relative_to(root / name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            written.append(str(target))
    return written


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            self._generated = copy_generated(Path(self.build_lib) / "percept")

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *getattr(self, "_generated", [])]


class Sdist(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        copy_generated(Path(base_dir) / "_gen" / "percept")


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
