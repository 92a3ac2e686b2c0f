"""The stand-in object image's CPU NMS (deploy/standins/torchvision_cpu_ops.py) keeps
the same boxes, in the same order, as torchvision's own kernel."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

SHIM = Path(__file__).resolve().parents[2] / "deploy" / "standins" / "torchvision_cpu_ops.py"


@pytest.fixture(scope="module")
def shim():
    spec = importlib.util.spec_from_file_location("percept_torchvision_cpu_ops", SHIM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # It waits for torchvision.extension's import; here that import is long done.
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, module._AfterExtension)]
    return module


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("iou", [0.3, 0.45, 0.7])
def test_shim_nms_keeps_what_torchvision_keeps(shim, seed, iou):
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(400, 2, generator=generator) * 200
    boxes = torch.cat([corners, corners + 5 + torch.rand(400, 2, generator=generator) * 60], 1)
    scores = torch.rand(400, generator=generator)
    scores[10:20] = scores[0]  # ties keep torchvision's order too
    expected = torchvision.ops.nms(boxes, scores, iou)
    kept = shim.nms(boxes, scores, iou)
    assert kept.dtype == torch.int64
    assert torch.equal(kept, expected)


def test_shim_nms_of_no_boxes_is_empty(shim):
    kept = shim.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert kept.shape == (0,) and kept.dtype == torch.int64
