"""gen/ must be exactly what protos/ generates now (run `make proto`)."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gen_is_in_sync_with_protos(tmp_path):
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos").rglob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-Iprotos", f"--python_out={tmp_path}",
         f"--grpc_python_out={tmp_path}", f"--pyi_out={tmp_path}", "--include_source_info",
         f"--descriptor_set_out={tmp_path / 'descriptors.binpb'}", *protos],
        cwd=ROOT, check=True,
    )  # fmt: skip
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(
        p.relative_to(ROOT / "gen")
        for p in (ROOT / "gen").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert fresh == committed, "gen/ has different files than protos/ generates: run `make proto`"
    stale = [
        str(rel)
        for rel in fresh
        if not filecmp.cmp(tmp_path / rel, ROOT / "gen" / rel, shallow=False)
    ]
    assert not stale, f"gen/ is stale for {stale}: run `make proto`"


def test_generated_imports_work_as_packages():
    from percept.face.v1 import face_service_pb2, face_service_pb2_grpc

    assert face_service_pb2.DESCRIPTOR.package == "percept.face.v1"
    assert hasattr(face_service_pb2_grpc, "FaceServiceStub")
