"""Settings said once: the pieces every process's settings share (logging, a
port, a Redis URL, a value a mounted secret may give), and every gRPC server's
settings; each service subclasses them with its env prefix."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AliasChoices, BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from percept_runtime.video import VideoPolicy

MiB = 1024 * 1024
T = TypeVar("T")

# A TCP port; 0 picks a free one, or turns the listener off, as each setting says.
Port = Annotated[int, Field(ge=0, le=65535)]


class Settings(BaseSettings):
    """The base of every process's settings: each setting is documented by the
    docstring under it (its description in the schema), unknown env ignored."""

    model_config = SettingsConfigDict(extra="ignore", use_attribute_docstrings=True)


class LoggingSettings(Settings):
    """Every process logs at <PREFIX>LOG_LEVEL."""

    log_level: str = "INFO"
    """Python logging level."""


class SecretFiles(Settings):
    """Values a mounted secret may give instead: `secret_files` pairs a setting
    with the setting naming its file, read when the value itself is not given
    (or empty)."""

    secret_files: ClassVar[tuple[tuple[str, str], ...]] = ()

    @model_validator(mode="after")
    def _read_secret_files(self) -> SecretFiles:
        for name, file_setting in self.secret_files:
            path = getattr(self, file_setting)
            if path is not None and (name not in self.model_fields_set or not getattr(self, name)):
                setattr(self, name, path.read_text().strip())
        return self


def redis_url_field(prefix: str) -> Any:
    """The Redis URL setting: env REDIS_URL, as every process of the stack reads
    it, or <prefix>REDIS_URL."""
    return Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", f"{prefix}REDIS_URL", "redis_url"),
    )


def part_settings(settings: BaseModel, cls: type[T], **overrides: Any) -> T:
    """The dataclass of settings one part takes (the gallery's index, a model's
    config), from the settings named alike and `overrides`; its other fields
    keep their defaults."""
    names = {f.name for f in dataclasses.fields(cls)} & set(type(settings).model_fields)
    return cls(**{name: getattr(settings, name) for name in names} | overrides)


class ServerSettings(LoggingSettings, SecretFiles):
    """Common server settings. Env names carry the service prefix (FACE_PORT...)."""

    secret_files = (("auth_token", "auth_token_file"),)

    host: str = "0.0.0.0"
    """Address to listen on."""
    port: Port = 50051
    """gRPC port (0 picks a free one)."""
    metrics_port: Port = 0
    """Prometheus /metrics HTTP port; 0 turns it off."""
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    """Inference worker processes (each loads the model once)."""
    max_message_bytes: int = Field(64 * MiB, ge=1024)
    """Largest request or response message, bytes."""
    max_image_pixels: int = Field(40_000_000, ge=1)
    """Largest image (width x height) decoded."""
    max_video_frames: int = Field(100_000, ge=1)
    """Most frames one video request processes."""
    video_allowed_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    """Comma-separated directories whose files may be opened by uri."""
    video_allowed_schemes: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Comma-separated URI schemes (rtsp, http, https) that may be opened."""
    stream_window: int = Field(0, ge=0)
    """Frames in flight per stream; 0 means 2 x workers."""
    grace_period_s: float = Field(30.0, ge=0)
    """On SIGTERM, how long in-flight calls may finish."""
    drain_delay_s: float = Field(1.0, ge=0)
    """On SIGTERM, NOT_SERVING is reported this long before the port closes."""
    max_connection_age_s: float = Field(300.0, ge=0)
    """Clients reconnect after this long, so new replicas get traffic; 0 is forever."""
    max_connection_age_grace_s: float = Field(3600.0, ge=0)
    """Calls still running on a connection past its age may finish within this (long videos)."""
    max_worker_rss_mb: int = Field(3072, ge=0)
    """A worker whose memory stays above this after a call is replaced (MiB; 0: never)."""
    tls_cert: Path | None = None
    """PEM certificate chain: serve TLS (with tls_key) instead of plaintext."""
    tls_key: Path | None = None
    """PEM private key of tls_cert."""
    tls_client_ca: Path | None = None
    """PEM CA bundle: require client certificates signed by it (mutual TLS)."""
    auth_token: str = ""
    """Shared token: every call but health checks must carry `authorization: Bearer <token>`."""
    auth_token_file: Path | None = None
    """Read auth_token from this file (a mounted secret) instead."""
    health_port: Port = 0
    """A plaintext port serving only grpc.health.v1, for probes that cannot speak TLS (0: off)."""
    replica_name: str = ""
    """How this replica names itself to clients (x-percept-replica trailing metadata); empty means host:port."""

    @field_validator("video_allowed_dirs", "video_allowed_schemes", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("video_allowed_schemes")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [scheme.lower().rstrip(":/") for scheme in value]

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        return self

    @property
    def window(self) -> int:
        return self.stream_window or 2 * self.workers

    def video_policy(self) -> VideoPolicy:
        return VideoPolicy(
            allowed_dirs=tuple(self.video_allowed_dirs),
            allowed_schemes=tuple(self.video_allowed_schemes),
            max_frames=self.max_video_frames,
            max_frame_pixels=self.max_image_pixels,
        )


def settings_from_argv(
    cls: type[ServerSettings], argv: list[str] | None, prog: str, **extra_flags: str
):
    """Build settings from env, then command-line flags for the few things people
    change by hand: --host, --port, --workers, --metrics-port and extra_flags
    (name -> help)."""
    parser = argparse.ArgumentParser(prog=prog, description=cls.__doc__)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--metrics-port", type=int)
    parser.add_argument("--log-level")
    for name, help_text in extra_flags.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=help_text)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    return cls(**overrides)
