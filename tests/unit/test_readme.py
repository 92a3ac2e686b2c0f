"""The README stays true: every setting of every process is documented there."""

from __future__ import annotations

from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _fields(cls) -> list[str]:
    return [name.upper() for name in cls.model_fields]


def test_every_gateway_setting_is_in_the_readme():
    from gateway.settings import GatewaySettings

    missing = [
        name
        for name in _fields(GatewaySettings)
        if (f"`GATEWAY_{name}`" not in README and name != "REDIS_URL")
    ]
    assert not missing, f"README.md lacks GATEWAY_{missing}"


@pytest.mark.parametrize(("module", "cls", "prefix"), [
    ("face_service.settings", "FaceSettings", "FACE_"),
    ("object_service.settings", "ObjectSettings", "OBJECT_"),
])  # fmt: skip
def test_every_service_setting_is_in_the_readme(module, cls, prefix):
    import importlib

    settings = getattr(importlib.import_module(module), cls)
    missing = [
        name
        for name in _fields(settings)
        # the object service lists the settings it shares with faces without a prefix
        if prefix + name not in README and f"`{name}`" not in README
    ]
    assert not missing, f"README.md lacks {prefix}{missing}"


def test_every_gallery_setting_is_in_the_readme():
    from face_service.gallery.settings import GallerySettings

    gallery = (Path(__file__).resolve().parents[2] / "face_service/gallery/README.md").read_text()
    # the main README lists the common ones and points to the gallery's for the rest
    missing = [
        n
        for n in _fields(GallerySettings)
        if f"FACE_GALLERY_{n}" not in README and f"`{n}`" not in gallery
    ]
    assert not missing, f"no README documents FACE_GALLERY_{missing}"
