"""Face service settings: env FACE_*, flags for the common few."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from percept_runtime.settings import ServerSettings


class FaceSettings(ServerSettings):
    """Percept face service (gRPC). Every setting is also env FACE_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="FACE_", extra="ignore")

    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 picks a free one).")
