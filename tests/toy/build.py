"""Generate the toy's Python from its proto (what `make proto` does for gen/)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DESCRIPTOR_SET = "toy.binpb"  # next to the generated packages: the options' documentation


def generate(out: Path) -> Path:
    """Write toy/v1/toy_pb2.py, its gRPC stubs and a descriptor set with the
    proto's comments under `out` (put it on PYTHONPATH); returns `out`."""
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{HERE / 'proto'}",
            f"-I{ROOT / 'protos'}",
            f"-I{resources.files('grpc_tools') / '_proto'}",  # google/protobuf/*.proto
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "--include_source_info",
            f"--descriptor_set_out={out / DESCRIPTOR_SET}",
            "toy/v1/toy.proto",
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed on the toy proto ({code})")
    return out
