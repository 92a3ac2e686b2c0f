"""torchvision's NMS on a CPU-only torch whose torchvision has no compiled ops.

Only for object images built from a local wheelhouse (scripts/make_wheelhouse.py):
a Docker host that cannot reach PyTorch's CPU index has a CPU torch wheel but only
PyPI's torchvision, whose compiled ops (_C.so) link against CUDA torch and cannot
load beside a CPU torch; `import torchvision` then fails outright. Installed with a
.pth file, this module waits for `torchvision.extension` to be imported; if its
compiled ops did not load, it defines the ops torchvision's Python side registers
kernels for and gives `torchvision::nms` (the only one ultralytics' detection
calls) a CPU kernel written in torch, with torchvision's semantics: boxes in
descending score order, dropping any whose IoU with a kept box is > iou_threshold.
The others raise torch's "no kernel" error if called. Where torchvision's own ops
load, it does nothing. Images built from the real indexes never carry it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

SCHEMAS = {
    "roi_align": "(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
    "_roi_align_backward": "(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, "
    "int sampling_ratio, bool aligned) -> Tensor",
    "ps_roi_align": "(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio) -> (Tensor, Tensor)",
    "_ps_roi_align_backward": "(Tensor grad, Tensor rois, Tensor channel_mapping, "
    "float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, "
    "SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
    "roi_pool": "(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width) -> (Tensor, Tensor)",
    "_roi_pool_backward": "(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, "
    "SymInt height, SymInt width) -> Tensor",
    "ps_roi_pool": "(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width) -> (Tensor, Tensor)",
    "_ps_roi_pool_backward": "(Tensor grad, Tensor rois, Tensor channel_mapping, "
    "float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, "
    "SymInt channels, SymInt height, SymInt width) -> Tensor",
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qroi_align": "(Tensor input, Tensor rois, float input_scale, int input_zero_point, "
    "float rois_scale, int rois_zero_point, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
    "deform_conv2d": "(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, "
    "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, "
    "SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> Tensor",
    "_deform_conv2d_backward": "(Tensor grad, Tensor input, Tensor weight, Tensor offset, "
    "Tensor mask, Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, "
    "SymInt dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) "
    "-> (Tensor, Tensor, Tensor, Tensor, Tensor)",
}
_LIBRARIES: list = []  # torch.library.Library objects must stay alive


def nms(dets, scores, iou_threshold: float):
    """Indices (int64) of the boxes kept, in descending score order."""
    import torch

    order = torch.argsort(scores, descending=True, stable=True)
    boxes = dets[order].double()
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        width = (torch.minimum(x2[i], x2[i + 1 :]) - torch.maximum(x1[i], x1[i + 1 :])).clamp(min=0)
        height = (torch.minimum(y2[i], y2[i + 1 :]) - torch.maximum(y1[i], y1[i + 1 :])).clamp(
            min=0
        )
        inter = width * height
        iou = inter / (areas[i] + areas[i + 1 :] - inter)
        suppressed[i + 1 :] |= iou > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def _provide(extension) -> None:
    if extension._has_ops():
        return  # torchvision's own compiled ops loaded: nothing to do
    import torch

    definitions = torch.library.Library("torchvision", "DEF")
    for name, schema in SCHEMAS.items():
        definitions.define(name + schema)
    kernels = torch.library.Library("torchvision", "IMPL", "CPU")
    kernels.impl("nms", nms)
    _LIBRARIES.extend([definitions, kernels])
    extension._has_ops = lambda: True
    extension._check_cuda_version = lambda: -1  # no CUDA ops here


class _AfterExtension(importlib.abc.MetaPathFinder):
    """Runs _provide() right after torchvision.extension executes."""

    def find_spec(self, name, path=None, target=None):
        if name != "torchvision.extension":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _provide(module)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    if not any(isinstance(finder, _AfterExtension) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterExtension())


install()
