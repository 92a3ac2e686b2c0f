"""Face service settings: env FACE_*, flags for the common few. The face
gallery (collections) has its own: env FACE_GALLERY_* (face_service/gallery/settings.py)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from percept_runtime.settings import ServerSettings


class FaceSettings(ServerSettings):
    """Percept face service (gRPC). Every setting is also env FACE_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="FACE_", extra="ignore")

    max_detection_pixels: int = Field(40_000_000, ge=0)
    """Most pixels one HOG detection may scan (width x height x 4^upsample, after detection_max_side); 0: no limit."""
    min_enroll_face_px: int = Field(48, ge=0, le=4096)
    """Enrollment refuses faces smaller than this many pixels on their shorter side (too little detail for a reliable encoding); 0: any size."""
    max_cnn_pixels: int = Field(4_000_000, ge=0)
    """The same for the CNN detector (about 100x costlier a pixel); 0: no limit."""
